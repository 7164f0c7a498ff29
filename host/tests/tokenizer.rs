//! The tokenizer against HF: SmolLM2's vocabulary (from the GGUF, via a JSON fixture) on the
//! shared reference prompts and tricky strings, HF `tokenizer.json` folders, and a hand-built
//! SentencePiece vocabulary.
//!
//! Fixtures: `tests/reference/`, written by `scripts/tokenizer_reference.py`.
//! Run: `cargo test -p nano-infer-host --test tokenizer`; the encode-speed check:
//! `cargo test --release -p nano-infer-host --test tokenizer -- --ignored --nocapture`.

use std::path::PathBuf;
use std::sync::OnceLock;

use nano_infer_host::tokenizer::{ChatMessage, Tokenizer, TokenizerKind, TokenizerSpec};
use serde_json::Value;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/reference")
}

fn read_json(name: &str) -> Value {
    let path = reference_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// The spec a GGUF loader would fill from SmolLM2's metadata.
fn smollm2_spec() -> TokenizerSpec {
    let j = read_json("smollm2_tokenizer.json");
    let strings = |k: &str| -> Vec<String> {
        j[k].as_array()
            .expect(k)
            .iter()
            .map(|s| s.as_str().expect(k).to_string())
            .collect()
    };
    let id = |k: &str| j[k].as_u64().map(|x| x as u32);
    assert_eq!(j["model"], "gpt2");
    TokenizerSpec {
        kind: Some(TokenizerKind::ByteLevelBpe),
        tokens: strings("tokens"),
        merges: strings("merges"),
        scores: Vec::new(),
        token_types: j["token_types"]
            .as_array()
            .expect("token_types")
            .iter()
            .map(|t| t.as_i64().expect("type") as i32)
            .collect(),
        pre: j["pre"].as_str().expect("pre").to_string(),
        bos_id: id("bos_id"),
        eos_id: id("eos_id"),
        unk_id: id("unk_id"),
        pad_id: id("pad_id"),
        add_bos: j["add_bos"].as_bool().expect("add_bos"),
        add_eos: j["add_eos"].as_bool().expect("add_eos"),
        chat_template: j["chat_template"].as_str().map(str::to_string),
    }
}

fn smollm2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_spec(&smollm2_spec()).expect("SmolLM2 tokenizer builds"))
}

/// (name, text, HF ids) of every reference case.
fn cases() -> Vec<(String, String, Vec<u32>)> {
    read_json("tokenizer_reference.json")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().expect(k).to_string();
            (s("name"), s("text"), ids_of(&c["ids"]))
        })
        .collect()
}

/// Where two id lists first differ, with the tokens around it spelled out.
fn first_difference(tok: &Tokenizer, got: &[u32], want: &[u32]) -> String {
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let spell = |ids: &[u32]| -> Vec<String> {
        ids.iter()
            .map(|&i| format!("{i}:{:?}", tok.token_str(i).unwrap_or("?")))
            .collect()
    };
    let window = |ids: &[u32]| spell(&ids[at.saturating_sub(2)..(at + 4).min(ids.len())]);
    format!(
        "first difference at token {at} (lengths {} vs {}): got {:?}, HF {:?}",
        got.len(),
        want.len(),
        window(got),
        window(want)
    )
}

#[test]
fn smollm2_facts() {
    let tok = smollm2();
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert_eq!(tok.token_str(1), Some("<|im_start|>"));
    assert_eq!(tok.token_str(49_152), None);
    assert!(!tok.add_bos());
    assert_eq!(tok.special_token_count(), 17);
}

#[test]
fn encode_matches_hf_on_every_reference_string() {
    let tok = smollm2();
    let mut failures = Vec::new();
    let all = cases();
    assert!(
        all.len() >= 30,
        "expected 8 prompts + tricky strings, got {}",
        all.len()
    );
    for (name, text, want) in &all {
        for add_special in [false, true] {
            // SmolLM2 adds no BOS, so both give HF's ids.
            let got = tok.encode(text, add_special).expect("encode");
            if &got != want {
                failures.push(format!("{name}: {}", first_difference(tok, &got, want)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// llama.cpp's own tokenization (`scripts/llamacpp_tokens.py`) of every reference string,
/// prompts rendered through the chat template included: NanoInfer == llama.cpp (== HF above).
#[test]
fn encode_matches_llama_cpp_on_every_reference_string() {
    let tok = smollm2();
    let theirs = read_json("llamacpp_tokens.json")["cases"]
        .as_array()
        .expect("cases")
        .clone();
    let all = cases();
    assert_eq!(
        theirs.len(),
        all.len(),
        "llama.cpp tokenized every reference string"
    );
    let mut failures = Vec::new();
    for ((name, text, _), c) in all.iter().zip(&theirs) {
        assert_eq!(c["name"].as_str(), Some(name.as_str()));
        let want = ids_of(&c["ids"]);
        let got = tok.encode(text, false).expect("encode");
        if got != want {
            failures.push(format!("{name}: {}", first_difference(tok, &got, &want)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// 500 random strings mixing scripts, digits, whitespace, emoji and special tokens.
#[test]
fn encode_matches_hf_on_random_strings() {
    let tok = smollm2();
    let rows = read_json("smollm2_random_reference.json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 500);
    let mut failures = Vec::new();
    for row in rows {
        let text = row["text"].as_str().expect("text");
        let want = ids_of(&row["ids"]);
        let got = tok.encode(text, false).expect("encode");
        if got != want {
            failures.push(format!("{text:?}: {}", first_difference(tok, &got, &want)));
        }
        assert_eq!(tok.decode(&got).expect("decode"), text);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decode_inverts_encode() {
    let tok = smollm2();
    for (name, text, want) in cases() {
        assert_eq!(
            tok.decode(&want).expect("decode"),
            text,
            "{name}: decode(HF ids)"
        );
        let ids = tok.encode(&text, false).expect("encode");
        assert_eq!(
            tok.decode(&ids).expect("decode"),
            text,
            "{name}: decode(encode)"
        );
    }
}

#[test]
fn stream_decoding_equals_decode() {
    let tok = smollm2();
    let mut held_back = 0;
    for (name, _, ids) in cases() {
        let mut stream = tok.decode_stream();
        let mut text = String::new();
        for &id in &ids {
            match stream.push(id).expect("push") {
                Some(piece) => text.push_str(&piece),
                None => held_back += 1,
            }
        }
        text.push_str(&stream.finish().unwrap_or_default());
        assert_eq!(text, tok.decode(&ids).expect("decode"), "{name}");
    }
    // Emoji and CJK characters are split over byte tokens in this vocabulary.
    assert!(held_back > 0, "no character was ever split over tokens");

    // A lone first half of a character is flushed as U+FFFD, like decode does.
    let ids = tok.encode("🍕", false).expect("encode");
    assert!(ids.len() > 1, "🍕 should be several byte tokens");
    let mut stream = tok.decode_stream();
    assert_eq!(stream.push(ids[0]).expect("push"), None);
    assert_eq!(stream.finish().as_deref(), Some("\u{FFFD}"));
    assert_eq!(tok.decode(&ids[..1]).expect("decode"), "\u{FFFD}");
}

#[test]
fn chat_template_matches_hf() {
    let tok = smollm2();
    let prompts = read_json("prompts.json");
    let rendered: Vec<(String, String)> = cases()
        .into_iter()
        .map(|(name, text, _)| (name, text))
        .collect();
    let mut checked = 0;
    for p in prompts.as_array().expect("prompts") {
        if p["kind"] != "chat" {
            continue;
        }
        let messages: Vec<ChatMessage> =
            serde_json::from_value(p["messages"].clone()).expect("messages");
        let name = p["name"].as_str().expect("name");
        let want = &rendered
            .iter()
            .find(|(n, _)| n == name)
            .expect("rendered case")
            .1;
        let got = tok.apply_chat_template(&messages, true).expect("render");
        assert_eq!(&got, want, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 2);
    // Without the generation prompt the assistant header is left off.
    let msgs = [ChatMessage::new("user", "hi")];
    let got = tok.apply_chat_template(&msgs, false).expect("render");
    assert!(got.ends_with("<|im_start|>user\nhi<|im_end|>\n"), "{got:?}");
    assert!(got.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
}

#[test]
fn bad_ids_are_errors() {
    let tok = smollm2();
    assert!(tok.decode(&[0, 49_152]).is_err());
    assert!(tok.decode(&[u32::MAX]).is_err());
    let mut stream = tok.decode_stream();
    assert!(stream.push(1 << 30).is_err());
    assert_eq!(stream.push(28120).expect("push").as_deref(), Some("hello"));
}

#[test]
fn bad_specs_are_errors() {
    let mut spec = smollm2_spec();
    spec.pre = "no-such-pre".into();
    assert!(Tokenizer::from_spec(&spec).is_err());
    let mut spec = smollm2_spec();
    spec.merges.push("Ġ zzz_not_a_token".into());
    assert!(Tokenizer::from_spec(&spec).is_err());
    let mut spec = smollm2_spec();
    spec.token_types.pop();
    assert!(Tokenizer::from_spec(&spec).is_err());
    assert!(Tokenizer::from_spec(&TokenizerSpec::default()).is_err());
    assert!(Tokenizer::from_hf_dir(reference_dir().join("no-such-dir")).is_err());
}

#[test]
fn hf_tokenizer_json_folders() {
    let reference = read_json("hf_tiny_reference.json");
    use TokenizerKind::{ByteLevelBpe, SentencePiece};
    for (dir, kind, add_bos) in [
        ("hf_tiny_bytelevel", ByteLevelBpe, false),
        ("hf_tiny_llama3", ByteLevelBpe, false),
        ("hf_tiny_metaspace", SentencePiece, true),
        ("hf_tiny_metaspace_first", SentencePiece, true),
        ("hf_tiny_metaspace_split", SentencePiece, true),
    ] {
        let tok = Tokenizer::from_hf_dir(reference_dir().join(dir)).expect(dir);
        assert_eq!(tok.kind(), kind, "{dir}");
        assert_eq!(tok.add_bos(), add_bos, "{dir}");
        for row in reference[dir].as_array().expect("rows") {
            let name = row["name"].as_str().expect("name");
            let text = row["text"].as_str().expect("text");
            let want = ids_of(&row["ids"]);
            let got = tok.encode(text, true).expect("encode");
            assert!(
                got == want,
                "{dir}/{name}: {}",
                first_difference(&tok, &got, &want)
            );
            let decoded = tok.decode(&got).expect("decode");
            assert_eq!(
                decoded,
                row["decoded"].as_str().expect("decoded"),
                "{dir}/{name}"
            );
        }
    }
    let tok = Tokenizer::from_hf_dir(reference_dir().join("hf_tiny_bytelevel")).expect("dir");
    let chat = tok
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
        .expect("chat");
    assert_eq!(
        chat,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(tok.eos_id(), tok.token_id("<|im_end|>"));
}

/// Llama-style SentencePiece with scores: `▁` for spaces, highest-score merge first, unknown
/// chars as `<0xNN>` bytes.
#[test]
fn sentencepiece_scores_and_byte_fallback() {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    // (piece, score): "▁ab" beats "ab" beats "▁a"; "bc" is a trap that "ab" must win against.
    let pieces = [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("c", -2.0),
        ("ab", -3.0),
        ("bc", -4.0),
        ("▁a", -5.0),
        ("▁ab", -1.5),
        ("▁c", -6.0),
        ("<0x", -9.0),
    ];
    let base = tokens.len() as u32;
    let mut scores = vec![0.0; tokens.len()];
    for (p, s) in pieces {
        tokens.push(p.into());
        types.push(1);
        scores.push(s);
    }
    let id = |p: &str| base + pieces.iter().position(|(q, _)| *q == p).unwrap() as u32;
    let spec = TokenizerSpec {
        kind: Some(TokenizerKind::SentencePiece),
        tokens,
        scores,
        token_types: types,
        pre: "default".into(),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        add_bos: true,
        ..TokenizerSpec::default()
    };
    let tok = Tokenizer::from_spec(&spec).expect("spm builds");
    // "abc" → "▁abc": ab (-3) beats bc and ▁a, then ▁ab (-1.5); "▁ab c" has no merge.
    assert_eq!(tok.encode("abc", true).unwrap(), [1, id("▁ab"), id("c")]);
    // "bc a" → "▁bc▁a": "▁b" is not a token, "bc" (-4) vs "▁a" (-5) vs ...: bc merges, then ▁a.
    assert_eq!(
        tok.encode("bc a", false).unwrap(),
        [id("▁"), id("bc"), id("▁a")]
    );
    // é is not in the vocabulary: its two UTF-8 bytes come out as byte tokens.
    let e_acute = tok.encode("é", false).unwrap();
    assert_eq!(e_acute, [id("▁"), 3 + 0xC3, 3 + 0xA9]);
    // Special tokens in the text, and the space prefix after them (llama.cpp).
    assert_eq!(tok.encode("<s>c", false).unwrap(), [1, id("▁c")]);
    // Decoding turns ▁ into spaces, bytes into UTF-8, and drops the one prefix space.
    assert_eq!(
        tok.decode(&tok.encode("ab é c", false).unwrap()).unwrap(),
        "ab é c"
    );
    let mut stream = tok.decode_stream();
    let mut out = String::new();
    for &i in &tok.encode("é ab", false).unwrap() {
        out.push_str(&stream.push(i).unwrap().unwrap_or_default());
    }
    assert_eq!(out, "é ab");
    // Control and byte tokens are never produced by merging: "<0x" is a normal piece here, but
    // the text "<s>" is matched as the special token first.
    assert_eq!(tok.token_str(id("<0x")), Some("<0x"));
}

/// A SentencePiece BPE model trained with the `sentencepiece` library, loaded as GGUF would
/// store it (pieces, scores, types): ids and decodings equal that library's.
#[test]
fn sentencepiece_matches_the_sentencepiece_library() {
    let j = read_json("spm_tiny_reference.json");
    let spec = TokenizerSpec {
        kind: Some(TokenizerKind::SentencePiece),
        tokens: j["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().expect("token").to_string())
            .collect(),
        scores: j["scores"]
            .as_array()
            .expect("scores")
            .iter()
            .map(|x| x.as_f64().expect("score") as f32)
            .collect(),
        token_types: j["token_types"]
            .as_array()
            .expect("types")
            .iter()
            .map(|x| x.as_i64().expect("type") as i32)
            .collect(),
        pre: "default".into(),
        bos_id: j["bos_id"].as_u64().map(|x| x as u32),
        eos_id: j["eos_id"].as_u64().map(|x| x as u32),
        unk_id: j["unk_id"].as_u64().map(|x| x as u32),
        ..TokenizerSpec::default()
    };
    let tok = Tokenizer::from_spec(&spec).expect("spm builds");
    let cases = j["cases"].as_array().expect("cases");
    assert!(cases.len() > 200, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let text = case["text"].as_str().expect("text");
        let want = ids_of(&case["ids"]);
        let got = tok.encode(text, false).expect("encode");
        if got != want {
            failures.push(format!(
                "{name} {text:?}: {}",
                first_difference(&tok, &got, &want)
            ));
        }
        let decoded = tok.decode(&want).expect("decode");
        if decoded != case["decoded"].as_str().expect("decoded") {
            failures.push(format!("{name}: decode gives {decoded:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Encoding speed on a ~2,000-token text (run in release; see the module docs): the reference
/// cases once each, then random strings (few repeated words, so the word cache helps little).
#[test]
#[ignore]
fn encode_speed() {
    let tok = smollm2();
    let mut text = String::new();
    for (_, t, _) in cases() {
        text.push_str(&t);
        text.push('\n');
    }
    let randoms = read_json("smollm2_random_reference.json");
    for row in randoms.as_array().expect("rows") {
        if tok.encode(&text, false).unwrap().len() >= 2_000 {
            break;
        }
        text.push_str(row["text"].as_str().expect("text"));
        text.push('\n');
    }
    let n = tok.encode(&text, false).unwrap().len();
    let runs = 20;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(tok.encode(std::hint::black_box(&text), false).unwrap());
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "encode: {n} tokens, {} bytes in {:.2} ms ({:.1} MB/s)",
        text.len(),
        per * 1e3,
        text.len() as f64 / per / 1e6
    );
    let spec = smollm2_spec();
    let start = std::time::Instant::now();
    let built = Tokenizer::from_spec(&spec).unwrap();
    println!("from_spec: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    assert_eq!(built.vocab_size(), tok.vocab_size());
    assert!(per < 0.050, "encoding {n} tokens took {:.1} ms", per * 1e3);
}
