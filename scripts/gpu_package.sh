#!/usr/bin/env bash
# Builds the release test and bench executables here (no GPU needed) and packs them, with the
# anchors and a runner, into gpu-run/ for a GPU host that has no Rust (see DESIGN §4):
#   scripts/gpu_package.sh && (on the GPU host) bash gpu-run/run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-run && mkdir -p gpu-run/bin
exes=$( { cargo test --release --workspace --no-run --message-format=json; \
          cargo bench --bench gpu_kernels --no-run --message-format=json; } 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' | sort -u)
for e in $exes; do
    name=$(basename "$e" | sed 's/-[0-9a-f]\{16\}$//')
    # The loader tests read the 98 MB model, which does not travel (64 MiB limit); CI runs them.
    [ "$name" = loaders ] && continue
    cp "$e" "gpu-run/bin/$name" && strip "gpu-run/bin/$name"
done
cp -r ../shared/anchors gpu-run/anchors
cp scripts/compare_anchors.py scripts/gpu_run.sh gpu-run/
if [ -n "${NANO_INFER_FIXTURE:-}" ]; then cp "$NANO_INFER_FIXTURE" gpu-run/; fi
du -sh gpu-run
