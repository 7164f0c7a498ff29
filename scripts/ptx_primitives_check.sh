#!/usr/bin/env bash
# Assembles every inline-asm primitive, including those no shipped kernel uses yet (ldmatrix,
# mma, cp.async, votes, atomics): builds the kernel crate with the test-only `probe` feature
# (src/probe.rs: tc_probe_f16/_bf16) and runs ptxas for sm_80 and sm_90 on it.
#   scripts/ptx_primitives_check.sh [PTXAS]   (default: $PTXAS, else the CI venv's ptxas)
#   scripts/ptx_primitives_check.sh --build-only   (prints the probe PTX's path; for the GPU
#                                                   host's gpu_probe test, see gpu_package.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(pwd)/target/ptx-probe
asm="$work/nvptx64-nvidia-cuda/release/deps/nano_infer_kernels.s"
mkdir -p "$work"
rm -f "$asm"
(cd gpu-kernels && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_TARGET_DIR \
    cargo rustc --release --features probe --target nvptx64-nvidia-cuda -Zbuild-std=core \
    --crate-type cdylib --target-dir "$work" -- -C target-cpu=sm_80 --emit=asm > "$work.log" 2>&1) || true
[ -f "$asm" ] || { cat "$work.log"; echo "no PTX"; exit 2; }
if [ "${1:-}" = --build-only ]; then echo "$asm"; exit 0; fi

ptxas=${1:-${PTXAS:-$(find target/ci-venv -path '*nvidia/cu13/bin/ptxas' -type f 2>/dev/null | head -n 1)}}
[ -x "$ptxas" ] || { echo "ptxas not found: pass its path or set PTXAS"; exit 2; }
for k in tc_probe_f16 tc_probe_bf16; do
    grep -q "^.visible .entry $k" "$asm" || { echo "$k missing from the probe PTX"; exit 1; }
done
for instr in ldmatrix.sync.aligned.m8n8.x4.trans mma.sync.aligned.m16n8k16.row.col.f32.bf16 \
             cp.async.wait_group vote.sync.ballot atom.global.add.f32; do
    grep -q "$instr" "$asm" || { echo "$instr missing from the probe PTX"; exit 1; }
done
for arch in sm_80 sm_90; do
    "$ptxas" -arch=$arch -v "$asm" -o /dev/null 2> "$work-$arch.log" || { cat "$work-$arch.log"; exit 1; }
    echo "$arch: probe PTX assembles ($(grep -c '^.visible .entry' "$asm") entries)"
done
