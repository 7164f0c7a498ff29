#!/usr/bin/env bash
# Builds the release test and bench executables here (no GPU needed) and packs them, with the
# anchors and a runner, into gpu-run/ for a GPU host that has no Rust (see DESIGN §4):
#   scripts/gpu_package.sh && (on the GPU host) bash gpu-run/run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-run && mkdir -p gpu-run/bin
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin nano-infer
exes=$( { cargo test --release --workspace --no-run --message-format=json; \
          cargo bench --bench gpu_kernels --no-run --message-format=json; } 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' | sort -u)
for e in $exes; do
    name=$(basename "$e" | sed 's/-[0-9a-f]\{16\}$//')
    # Only what has GPU work or runs without the model: the full model (98 MB) and the text
    # fixtures stay here (64 MiB carry limit); CI runs those tests. `emu` has gpu_probe.
    case "$name" in gpu_vs_cpu|llama_gpu|decode_graph|quantized_gpu|seed_llama_mlp|gpu_kernels|emu) ;; *) continue ;; esac
    cp "$e" "gpu-run/bin/$name" && strip "gpu-run/bin/$name"
done
cp "$target/release/nano-infer" gpu-run/bin/nano-infer && strip gpu-run/bin/nano-infer
# A 2-layer SmolLM2 (~36 MB) for the end-to-end GPU tests and benchmarks.
"$target/release/nano-infer" fixture --layers 2 --out gpu-run/smollm2-2l.gguf
# The test-only probe kernels, for the emulator's gpu_probe test (hardware vs emulated semantics).
cp "$(scripts/ptx_primitives_check.sh --build-only)" gpu-run/bin/probe.ptx
cp -r ../shared/anchors gpu-run/anchors
cp scripts/compare_anchors.py scripts/gpu_run.sh scripts/ncu_summary.py gpu-run/
# The executables each embed the same PTX: xz's large window packs them ~40x (gzip: ~6x), so
# the folder fits the 64 MiB carry limit beside the working tree; gpu_run.sh unpacks them.
XZ_OPT=-9T0 tar cJf gpu-run/bin.tar.xz -C gpu-run bin && rm -rf gpu-run/bin
du -sh gpu-run
