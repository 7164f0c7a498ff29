#!/usr/bin/env bash
# Is the shipped PTX byte-identical to the one built from another revision's kernel crate?
# Builds gpu-kernels/ from BASE (default: `git merge-base main HEAD`) and from the working tree
# with the command build.rs uses (sm_80, release, no features) and compares the .s files (cmp).
#   scripts/ptx_identity.sh [BASE]        # exit 0: identical; 1: they differ (diff head shown)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-$(git merge-base main HEAD)}
# Outside the repository: the base's gpu-kernels must not look like a member of this workspace.
work=${PTX_IDENTITY_DIR:-${TMPDIR:-/tmp}/nano-infer-ptx-identity}
rm -rf "$work/base-src" && mkdir -p "$work/base-src"
git archive "$base" gpu-kernels rust-toolchain.toml | tar -x -C "$work/base-src"

# $1: crate directory, $2: target dir, $3: output file. The link step fails by design
# (no llvm-bitcode-linker, see build.rs); the .s file is the product.
build() {
    local asm="$2/nvptx64-nvidia-cuda/release/deps/nano_infer_kernels.s"
    rm -f "$asm"
    (cd "$1" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_TARGET_DIR \
        cargo rustc --release --target nvptx64-nvidia-cuda -Zbuild-std=core --crate-type cdylib \
        --target-dir "$2" -- -C target-cpu=sm_80 --emit=asm > "$2.log" 2>&1) || true
    [ -f "$asm" ] || { cat "$2.log"; echo "no PTX from $1"; exit 2; }
    cp "$asm" "$3"
}
build "$work/base-src/gpu-kernels" "$work/target-base" "$work/base.ptx"
build "$(pwd)/gpu-kernels" "$work/target-tree" "$work/tree.ptx"

for f in base tree; do
    echo "$f ($( [ $f = base ] && echo "$base" || echo "working tree")): $(sha256sum < "$work/$f.ptx" | cut -c1-16)…," \
         "$(wc -c < "$work/$f.ptx") bytes, $(grep -c '^.visible .entry' "$work/$f.ptx") entries"
done
if cmp "$work/base.ptx" "$work/tree.ptx"; then
    echo "PTX byte-identical"
else
    diff "$work/base.ptx" "$work/tree.ptx" | head -20
    exit 1
fi
