#!/usr/bin/env python3
"""Dumps dequantization reference values from the `gguf` Python package (llama.cpp's own
reader) for `host/tests/loaders.rs` to compare against.

Writes tests/reference/gguf_dequant.json (a few KB):
  - "model": for a few tensors of the SmolLM2-135M Q4_1 GGUF (Q8_0 embedding, Q4_1 weights,
    F32 norms): shape (outermost-first), the first 8 values, 8 values spread over the tensor,
    and the f64 sum and sum of absolute values of all elements;
  - "blocks": one or two seeded random blocks of each ggml format we read (Q8_0, Q4_0, Q4_1,
    Q4_K, Q6_K) as hex bytes with every dequantized value.

Setup and run (from the repository root):
  python3 -m venv /work/tmp/venv-gguf && /work/tmp/venv-gguf/bin/pip install gguf numpy
  /work/tmp/venv-gguf/bin/python scripts/gguf_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf.quants import dequantize

DEFAULT_MODEL = os.path.expanduser("~/.cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "reference", "gguf_dequant.json")

# (GGUF name, canonical HF name the Rust loader must give it)
TENSORS = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"),
    ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
    ("output_norm.weight", "model.norm.weight"),
]


def f32_list(values):
    """Shortest strings that round-trip each value as f32, as JSON numbers."""
    return [float(str(np.float32(v))) for v in values]


def model_entries(path):
    reader = GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    entries = []
    for gguf_name, hf_name in TENSORS:
        t = by_name[gguf_name]
        # `t.data` is the raw block bytes (quantized) or the values (float), outermost-first.
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        flat = values.reshape(-1)
        n = flat.size
        spread = [(k * n) // 8 + 5 for k in range(8)]
        entries.append(
            {
                "gguf_name": gguf_name,
                "name": hf_name,
                "type": t.tensor_type.name,
                "shape": list(values.shape),
                "first": f32_list(flat[:8]),
                "spread_index": spread,
                "spread": f32_list(flat[spread]),
                "sum": float(flat.astype(np.float64).sum()),
                "sum_abs": float(np.abs(flat.astype(np.float64)).sum()),
            }
        )
    return entries


def random_block(rng, qtype):
    """One or two blocks of random quants with sane f16 scales (no NaN/inf)."""
    if qtype == Q.Q8_0:
        b = bytearray(rng.integers(0, 256, 2 * 34, dtype=np.uint8).tobytes())
        for i in range(2):
            b[34 * i : 34 * i + 2] = np.float16(rng.uniform(-0.1, 0.1)).tobytes()
    elif qtype == Q.Q4_0:
        b = bytearray(rng.integers(0, 256, 2 * 18, dtype=np.uint8).tobytes())
        for i in range(2):
            b[18 * i : 18 * i + 2] = np.float16(rng.uniform(-0.1, 0.1)).tobytes()
    elif qtype == Q.Q4_1:
        b = bytearray(rng.integers(0, 256, 2 * 20, dtype=np.uint8).tobytes())
        for i in range(2):
            b[20 * i : 20 * i + 2] = np.float16(rng.uniform(0.001, 0.1)).tobytes()
            b[20 * i + 2 : 20 * i + 4] = np.float16(rng.uniform(-1, 0)).tobytes()
    elif qtype == Q.Q4_K:
        b = bytearray(rng.integers(0, 256, 144, dtype=np.uint8).tobytes())
        b[0:2] = np.float16(rng.uniform(0.001, 0.01)).tobytes()
        b[2:4] = np.float16(rng.uniform(0.001, 0.01)).tobytes()
    elif qtype == Q.Q6_K:
        b = bytearray(rng.integers(0, 256, 210, dtype=np.uint8).tobytes())
        b[208:210] = np.float16(rng.uniform(-0.01, 0.01)).tobytes()
    else:
        raise ValueError(qtype)
    return bytes(b)


def block_entries():
    rng = np.random.default_rng(20261126)
    entries = []
    for qtype in [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q4_K, Q.Q6_K]:
        raw = random_block(rng, qtype)
        values = dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(1, -1), qtype)
        entries.append({"type": qtype.name, "hex": raw.hex(), "values": f32_list(values.reshape(-1))})
    return entries


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NANO_INFER_GGUF", DEFAULT_MODEL)
    out = {
        "generated_by": "scripts/gguf_reference.py with the `gguf` Python package",
        "model_file": os.path.basename(path),
        "model": model_entries(path),
        "blocks": block_entries(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    # One line per tensor or block keeps the file small and its diffs readable.
    lines = ["{"]
    for key in ["generated_by", "model_file"]:
        lines.append(f" {json.dumps(key)}: {json.dumps(out[key])},")
    for key in ["model", "blocks"]:
        items = [f"  {json.dumps(e)}" for e in out[key]]
        lines.append(f' {json.dumps(key)}: [\n' + ",\n".join(items) + "\n ]" + ("," if key == "model" else ""))
    lines.append("}")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
