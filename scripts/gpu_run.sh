#!/usr/bin/env bash
# Runs on the GPU host (from gpu-run/): every test including the GPU ones, the GPU benchmark, the
# torch anchors for the same shapes, and the comparison — one job, one card.
#   bash gpu-run/gpu_run.sh OUT_DIR [parts...]   (torch_anchors.py's parts: kernels attention gemm
#   decode — decode also runs our end-to-end bench; profile: ncu over eager decode steps)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}; shift || true
mkdir -p "$out"
[ -f "$here/bin.tar.xz" ] && [ ! -d "$here/bin" ] &&
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$here/bin.tar.xz" "$here"
# cuBLAS ships inside PyTorch's wheels here; cudarc looks for libcublas.so.13 on the library path.
libs=$(python3 -c 'import glob,os,site; print(":".join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d+"/nvidia/**/libcublas*.so*", recursive=True)})))')
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
export NANO_INFER_FIXTURE="$here/smollm2-2l.gguf"
# The emulator's gpu_probe test runs the test-only probe kernels (gpu_package.sh packs them).
export NANO_INFER_PROBE_PTX="$here/bin/probe.ptx"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
{
  for t in "$here"/bin/*; do
    case "$(basename "$t")" in gpu_kernels|nano-infer|*.ptx) continue ;; esac
    echo "== $(basename "$t")"
    "$t" --include-ignored --test-threads=4 2>&1 | grep -v " \.\.\. ok$"
    echo "exit status: ${PIPESTATUS[0]}"
  done
} > "$out/tests.txt" 2>&1
grep -E "test result" "$out/tests.txt" | awk '{p+=$4; f+=$6} END {print "GPU host tests: " p " passed, " f " failed"}' | tee -a "$out/tests.txt"
# NO_SANITIZER=1 skips it (a shorter job while iterating on performance).
if [ -z "${NO_SANITIZER:-}" ] && command -v compute-sanitizer >/dev/null; then
  timeout 300 compute-sanitizer --tool memcheck --print-limit 20 "$here/bin/gpu_vs_cpu" --include-ignored \
    cuda::rms_norm cuda::elementwise cuda::softmax cuda::rope cuda::embedding cuda::gemm cuda::gemv \
    cuda::fused_gemv cuda::qkv_rope_kv > "$out/sanitizer.txt" 2>&1
  timeout 300 compute-sanitizer --tool racecheck --print-limit 20 "$here/bin/gpu_vs_cpu" --include-ignored \
    cuda::rms_norm cuda::softmax cuda::gemv cuda::fused_gemv cuda::qkv_rope_kv >> "$out/sanitizer.txt" 2>&1
  # The attention kernels: shared-memory tiles (flash), split partials (decode), decode
  # attention launched right behind the kernel that writes its new key (early K/V loads), and
  # the decode step's kernels at device-side positions past the cache.
  timeout 400 compute-sanitizer --tool memcheck --print-limit 20 "$here/bin/gpu_vs_cpu" --include-ignored \
    cuda::flash_attention_matches cuda::flash3_attention_matches cuda::decode_attention \
    cuda::decode_step cuda::positions_past >> "$out/sanitizer.txt" 2>&1
  timeout 400 compute-sanitizer --tool racecheck --print-limit 20 "$here/bin/gpu_vs_cpu" --include-ignored \
    cuda::flash_attention_matches cuda::flash3_attention_matches >> "$out/sanitizer.txt" 2>&1
  # The decode graph's kernels (fused RoPE + KV write, device-length attention, argmax), eager
  # and replayed.
  timeout 300 compute-sanitizer --tool memcheck --print-limit 20 "$here/bin/decode_graph" --include-ignored \
    graph_replay_equals_eager_steps >> "$out/sanitizer.txt" 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$out/sanitizer.txt"
fi
parts=${*:-kernels gemm}
# `profile` is ours (ncu below), not an anchor part.
anchor_parts=$(for p in $parts; do [ "$p" = profile ] || echo "$p"; done)
"$here/bin/gpu_kernels" --json "$out/nano.json" > /dev/null 2> "$out/logs.txt"
# End to end: our CLI bench (GPU, random SmolLM2/Llama weights made on the GPU, and the fixture):
# prefill 512/2048 tokens, decode from one CUDA graph at context 128/2048 (SmolLM2 also eager,
# to show what the graph saves), GB/s against the copy bandwidth of the same run; beside the
# CUDA-graph PyTorch decode for the same configs and contexts, when "decode" is among the parts.
if [[ " $parts " == *" decode "* ]]; then
  {
    for cfg in smollm2-135m llama2-7b llama3-8b; do
      echo "== nano-infer bench --config $cfg"
      "$here/bin/nano-infer" bench --device cuda --config "$cfg" --prefill-tokens 512,2048 --contexts 128,2048 --gen-tokens 128 2>&1
    done
    "$here/bin/nano-infer" bench --device cuda --config smollm2-135m --prefill-tokens 0 --contexts 128 --gen-tokens 128 --eager 2>&1 | grep decode
    # What FlashAttention-3 gives the prefill: the same bench on FlashAttention-2.
    echo "== NANO_INFER_FLASH3=0 nano-infer bench --config llama2-7b (FlashAttention-2 prefill)"
    NANO_INFER_FLASH3=0 "$here/bin/nano-infer" bench --device cuda --config llama2-7b --prefill-tokens 512,2048 --contexts 128 --gen-tokens 16 2>&1 | grep -i prefill
    # What programmatic dependent launch gives: the sm_80 build with plain launches.
    for cfg in smollm2-135m llama2-7b; do
      echo "== NANO_INFER_PDL=0 nano-infer bench --config $cfg (no programmatic dependent launch)"
      NANO_INFER_PDL=0 "$here/bin/nano-infer" bench --device cuda --config "$cfg" --prefill-tokens 0 --contexts 128 --gen-tokens 128 2>&1 | grep decode
    done
    # What the decode fusions give (norms, residual adds, RoPE + cache write inside the GEMVs):
    # the unfused ops, eight kernels a block instead of five.
    for cfg in smollm2-135m llama2-7b; do
      echo "== NANO_INFER_FUSED_DECODE=0 nano-infer bench --config $cfg (unfused decode step)"
      NANO_INFER_FUSED_DECODE=0 "$here/bin/nano-infer" bench --device cuda --config "$cfg" --prefill-tokens 0 --contexts 128 --gen-tokens 128 2>&1 | grep decode
    done
    # Quantized weights on the GPU: random models quantized on the device, and the fixture's
    # Q4_1/Q8_0 blocks as stored.
    for cfg in smollm2-135m llama2-7b; do
      for q in q8_0 q4_1; do
        echo "== nano-infer bench --config $cfg --weights $q"
        "$here/bin/nano-infer" bench --device cuda --config "$cfg" --weights "$q" --prefill-tokens 512 --contexts 128,2048 --gen-tokens 128 2>&1
      done
    done
    for w in stored dense; do
      echo "== nano-infer bench --model smollm2-2l.gguf --weights $w"
      "$here/bin/nano-infer" bench --device cuda --model "$NANO_INFER_FIXTURE" --weights $w --prefill-tokens 128 --contexts 128 --gen-tokens 128 2>&1
    done
    echo "== torch_graph_decode.py (all configs, contexts 128 and 2048)"
    python3 "$here/anchors/torch_graph_decode.py" --config all --context 128 --context 2048 2>&1 | tail -n 1
  } > "$out/e2e.txt"
  # Where a decode step's time goes: ncu on the kernels of eager steps (after the prefill's),
  # duration and DRAM throughput per kernel, for the 7B shape and SmolLM2.
  if command -v ncu >/dev/null && [[ " $parts " == *" profile "* ]]; then
    for cfg in llama2-7b smollm2-135m; do
      echo "== ncu: one eager decode step, $cfg f16, context 128"
      timeout 240 ncu --clock-control none --cache-control none --launch-skip 2000 --launch-count 300 --csv --page raw \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
        "$here/bin/nano-infer" bench --device cuda --config "$cfg" --prefill-tokens 0 --contexts 128 --gen-tokens 8 --eager 2>/dev/null |
        python3 "$here/ncu_summary.py"
    done >> "$out/e2e.txt" 2>&1
  fi
  cat "$out/e2e.txt"
fi
python3 "$here/anchors/torch_anchors.py" $(for p in $anchor_parts; do echo --only "$p"; done) --json "$out/anchors.json" > /dev/null 2>> "$out/logs.txt"
python3 "$here/compare_anchors.py" "$out/nano.json" "$out/anchors.json" | tee "$out/compare.txt"
# The M = 1 GEMVs' kernel time alone (ncu: caches flushed before each launch, no host launch in
# the figure), beside the per-call event times above, which add the host's launch of the
# kernel (the `nano_launch_*_us` probes: a bare driver call costs a few µs of host time here).
if command -v ncu >/dev/null && [[ " $parts " == *" gemm "* ]]; then
  # Both shapes move 90,207,744 bytes (weight + x + y, f16): TB/s = 90.207744 / µs.
  for shape in K4096_N11008 K11008_N4096; do
    timeout 90 ncu --clock-control none --kernel-name regex:gemv --launch-skip 5 --launch-count 5 \
      --metrics gpu__time_duration.sum "$here/bin/gpu_kernels" --only "gemv_f16_M1_$shape" 2>/dev/null |
      awk -v s="$shape" '/gpu__time_duration/ {
        printf "ncu kernel time gemv_f16_M1_%s: %.2f us = %.3f TB/s (weight + x + y bytes)\n", s, $3, 90.207744 / $3 }'
    # The anchor's cuBLAS call measured the same way: torch's F.linear on the same shape (inputs
    # from torch.empty, so the linear calls are the only kernels; each kernel listed by name).
    kn=${shape#K}; k=${kn%_N*}; n=${kn#*_N}
    timeout 90 ncu --clock-control none --launch-skip 5 --launch-count 5 --metrics gpu__time_duration.sum \
      python3 -c "import torch
x = torch.empty(1, $k, dtype=torch.float16, device='cuda')
w = torch.empty($n, $k, dtype=torch.float16, device='cuda')
for _ in range(10): torch.nn.functional.linear(x, w)
torch.cuda.synchronize()" 2>/dev/null |
      awk -v s="$shape" '/Context [0-9]+, Stream/ { l = $0; sub(/^ *(void )?/, "", l); name = substr(l, 1, 40) } /gpu__time_duration/ {
        printf "ncu kernel time torch F.linear M1_%s (%s): %.2f %s = %.3f TB/s\n", s, name, $3, $2, 90.207744 / $3 }'
  done | tee -a "$out/compare.txt"
fi
