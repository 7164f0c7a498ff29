//! Compiles `gpu-kernels/` to PTX with rustc's `nvptx64-nvidia-cuda` target, three times, and
//! writes `$OUT_DIR/kernels.ptx` (sm_80: Ampere and later), `$OUT_DIR/kernels_sm90.ptx` (Hopper:
//! the same kernels, each entry opening with `griddepcontrol` for programmatic dependent launch)
//! and `$OUT_DIR/kernels_sm90a.ptx` (compute capability 9.0 only: the sm_90 kernels plus the
//! `wgmma` ones), which `src/lib.rs` embeds.
//!
//! The command is `cargo rustc --release --target nvptx64-nvidia-cuda -Zbuild-std=core
//! --crate-type cdylib -- -C target-cpu=sm_80 --emit=asm`. rustc writes the PTX as the `.s` file
//! and then fails to link for lack of `llvm-bitcode-linker`; that failure is expected, so the
//! `.s` file is the product and its absence (not the exit status) is the error. No CUDA toolkit
//! is needed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The targets: `(target-cpu, file)`. sm_80 runs on Ampere and Hopper; sm_90 adds what only
/// Hopper has (`primitives::grid_dependency_sync`); sm_90a adds `wgmma`
/// (`attention_flash3.rs`), which is not in the portable sm_90 ISA.
const TARGETS: [(&str, &str); 3] = [
    ("sm_80", "kernels.ptx"),
    ("sm_90", "kernels_sm90.ptx"),
    ("sm_90a", "kernels_sm90a.ptx"),
];

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let kernels = root.join("gpu-kernels");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=gpu-kernels/src");
    println!("cargo:rerun-if-changed=gpu-kernels/Cargo.toml");
    // Each build has its own target dir, so the three run side by side.
    std::thread::scope(|s| {
        for (cpu, file) in TARGETS {
            let (kernels, out_dir) = (&kernels, &out_dir);
            s.spawn(move || build_ptx(kernels, out_dir, cpu, file));
        }
    });
}

/// Builds the kernels for `target_cpu` and writes the PTX to `$OUT_DIR/file`.
fn build_ptx(kernels: &Path, out_dir: &Path, target_cpu: &str, file: &str) {
    // A nested cargo on the outer target dir would deadlock on its lock: use our own (one per
    // target, so each stays cached).
    let target_dir = out_dir.join(format!("ptx-target-{target_cpu}"));
    let asm = target_dir.join("nvptx64-nvidia-cuda/release/deps/nano_infer_kernels.s");
    let _ = std::fs::remove_file(&asm); // never ship a stale PTX

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(kernels)
        .args([
            "rustc",
            "--release",
            "--target",
            "nvptx64-nvidia-cuda",
            "-Zbuild-std=core",
        ])
        .args(["--crate-type", "cdylib", "--target-dir"])
        .arg(&target_dir)
        .args([
            "--",
            "-C",
            &format!("target-cpu={target_cpu}"),
            "--emit=asm",
        ])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        // `cargo clippy` wraps rustc for the outer build; the PTX must come from plain rustc.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the GPU kernels: {e}"));

    if !asm.exists() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("rust-src") || stderr.contains("library/Cargo.lock") {
            "\nThe nightly's `rust-src` component is missing: run `rustup component add rust-src` \
             (or `rustup toolchain install` in the repository root, which reads rust-toolchain.toml)."
        } else {
            ""
        };
        panic!(
            "building the GPU kernels for {target_cpu} produced no PTX ({}).{hint}\n{stderr}",
            asm.display()
        );
    }
    copy_ptx(&asm, &out_dir.join(file));
}

/// Copies the PTX and checks that it looks like PTX.
fn copy_ptx(from: &Path, to: &Path) {
    let ptx = std::fs::read_to_string(from)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    assert!(
        ptx.contains(".version") && ptx.contains(".entry"),
        "{} is not PTX with kernel entries",
        from.display()
    );
    std::fs::write(to, ptx).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}
