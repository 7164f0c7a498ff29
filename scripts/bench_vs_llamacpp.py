#!/usr/bin/env python3
"""NanoInfer vs llama.cpp on the CPU: the same GGUF, the same thread count, one run.

Two jobs, each 1 warm-up then the median of 3 timed runs:
  prompt      one 512-token prompt in one forward pass (tokens/s)
  generation  128 greedy tokens after a 4-token prompt (tokens/s of the 128 decode steps)

llama.cpp runs through llama-cpp-python with the model param `use_extra_bufts=False` (its default
build crashed in the AMX matmul path on the build machine; this also turns off its repacked weight
buffers, so this is llama.cpp's plain ggml quantized path). NanoInfer runs `nano-infer bench` on the
quantized CPU path (the default for GGUF files on the CPU).

Usage:
  scripts/bench_vs_llamacpp.py [--model FILE] [--threads N] [--venv DIR] [--nano BIN]

llama-cpp-python comes from `--venv` (or $LLAMA_VENV); when that venv lacks it, it is created and
`pip install llama-cpp-python==0.3.36` builds llama.cpp for this CPU (about 20 minutes on 2 cores).
`--nano` defaults to `cargo build --release` + target/release/nano-infer.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

LLAMA_CPP_VERSION = "0.3.36"
PROMPT_TOKENS = 512
GEN_PROMPT_TOKENS = 4
GEN_TOKENS = 128
RUNS = 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prompt_ids(n, vocab):
    """The spread-out ids `nano-infer bench` uses, so both engines see the same prompt."""
    return [(i * 7919 + 13) % vocab for i in range(n)]


def llama_worker(model, threads):
    """Runs inside the llama-cpp-python venv; prints one JSON line of timings."""
    import numpy as np
    import llama_cpp
    import llama_cpp.llama_cpp as lc

    # 0.3.36 accepts **kwargs in Llama(...) but ignores them: the flag goes into the defaults.
    orig = lc.llama_model_default_params

    def defaults_without_extra_bufts():
        p = orig()
        p.use_extra_bufts = False
        return p

    lc.llama_model_default_params = defaults_without_extra_bufts
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=512, n_ubatch=512,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    lc.llama_model_default_params = orig
    assert llm.model_params.use_extra_bufts is False
    vocab = llm.n_vocab()

    def prompt_run():
        ids = prompt_ids(PROMPT_TOKENS, vocab)
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        return PROMPT_TOKENS / (time.perf_counter() - t)

    def gen_run():
        llm.reset()
        llm.eval(prompt_ids(GEN_PROMPT_TOKENS, vocab))
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t = time.perf_counter()
        for _ in range(GEN_TOKENS):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        return GEN_TOKENS / (time.perf_counter() - t)

    out = {}
    for name, job in (("prompt", prompt_run), ("generation", gen_run)):
        job()  # warm-up
        out[name] = [job() for _ in range(RUNS)]
    out["system_info"] = lc.llama_print_system_info().decode(errors="replace").strip()
    out["version"] = llama_cpp.__version__
    print(json.dumps(out))


def ensure_llama_venv(venv):
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import llama_cpp, numpy"]
    if os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"installing llama-cpp-python=={LLAMA_CPP_VERSION} into {venv} "
          "(builds llama.cpp: ~20 min on 2 cores)", file=sys.stderr)
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", "numpy",
                    f"llama-cpp-python=={LLAMA_CPP_VERSION}"], check=True)
    return py


def nano_run(nano, model, threads, prefill_tokens, context, gen_tokens):
    """One `nano-infer bench` process: its JSON line, with `prefill` and `decode` reduced to the
    tok/s list of their one measurement (empty when not run)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [nano, "bench", "--model", model, "--prefill-tokens", str(prefill_tokens),
           "--contexts", str(context), "--gen-tokens", str(gen_tokens), "--runs", str(RUNS),
           "--json"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("prefill", "decode"):
        out[key] = out[key][0]["tokens_per_s"] if out[key] else []
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--venv", default=os.environ.get(
        "LLAMA_VENV", os.path.join(ROOT, "target", "llama-venv")))
    ap.add_argument("--nano", help="a built nano-infer binary (default: cargo build --release)")
    ap.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.llama_worker:
        return llama_worker(args.model, args.threads)

    nano = args.nano
    if nano is None:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "nano-infer"],
                       cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        nano = os.path.join(target, "release", "nano-infer")
    py = ensure_llama_venv(args.venv)
    load = os.getloadavg()[0]

    res = subprocess.run([py, os.path.abspath(__file__), "--llama-worker", "--model", args.model,
                          "--threads", str(args.threads)], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"llama.cpp worker failed:\n{res.stderr}")
    llama = json.loads(res.stdout.strip().splitlines()[-1])
    ours_prompt = nano_run(nano, args.model, args.threads, PROMPT_TOKENS, 1, 0)
    ours_gen = nano_run(nano, args.model, args.threads, 0, GEN_PROMPT_TOKENS, GEN_TOKENS)

    size_mb = os.path.getsize(args.model) / 1e6
    print(f"model: {args.model} ({size_mb:.1f} MB), threads: {args.threads}, "
          f"load average at start: {load:.2f}")
    print(f"llama.cpp: llama-cpp-python {llama['version']}, use_extra_bufts=False "
          "(repacked weights off); system_info: " + llama["system_info"])
    print(f"nano-infer: {ours_gen['dtype']} weights on the CPU ({nano})")
    print(f"{'job':<34}{'llama.cpp':>12}{'nano-infer':>12}{'ratio':>8}")
    rows = (("prompt 512 tokens (tok/s)", llama["prompt"], ours_prompt["prefill"]),
            ("generation 128 after 4 (tok/s)", llama["generation"], ours_gen["decode"]))
    for name, theirs, ours in rows:
        t, o = statistics.median(theirs), statistics.median(ours)
        print(f"{name:<34}{t:>12.1f}{o:>12.1f}{o / t:>7.2f}x")
    print(f"(median of {RUNS} after 1 warm-up; runs: llama.cpp prompt {fmt(llama['prompt'])}, "
          f"gen {fmt(llama['generation'])}; nano-infer prompt {fmt(ours_prompt['prefill'])}, "
          f"gen {fmt(ours_gen['decode'])})")
    hwm = ours_gen["vm_hwm_kb"] / 1e3
    print(f"nano-infer VmHWM while generating: {hwm:.1f} MB = {hwm / size_mb:.2f}x the GGUF file")


def fmt(xs):
    return "/".join(f"{x:.1f}" for x in xs)


if __name__ == "__main__":
    main()
