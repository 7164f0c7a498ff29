#!/usr/bin/env python3
"""llama.cpp's own tokenization of every tokenizer reference string, for the cross-check in
`host/tests/tokenizer.rs` (NanoInfer == HF == llama.cpp).

    /work/tmp/venv-llama/bin/python scripts/llamacpp_tokens.py MODEL.gguf

Reads `tests/reference/tokenizer_reference.json` (the rendered texts), tokenizes each with
llama-cpp-python (vocab only, `add_bos=False`, `special=True` so `<|im_start|>` is one token,
as NanoInfer and HF parse it) and writes `tests/reference/llamacpp_tokens.json`.
"""
import json
import sys

from llama_cpp import Llama

REF = "tests/reference/tokenizer_reference.json"
OUT = "tests/reference/llamacpp_tokens.json"


def main():
    llm = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
    cases = json.load(open(REF))["cases"]
    out = []
    for c in cases:
        ids = llm.tokenize(c["text"].encode("utf-8"), add_bos=False, special=True)
        out.append({"name": c["name"], "ids": ids})
        same = ids == c["ids"]
        print(f"{c['name']:30s} {len(ids):5d} tokens  {'same as HF' if same else 'DIFFERS from HF'}")
    json.dump({"engine": "llama-cpp-python 0.3.36 (vocab_only)", "cases": out}, open(OUT, "w"), indent=0)


if __name__ == "__main__":
    main()
