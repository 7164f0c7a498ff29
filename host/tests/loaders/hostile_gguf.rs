//! Malformed, truncated and hostile GGUF files: each must give a typed error naming the
//! problem, never a panic or a huge allocation.

use nano_infer_host::Error;
use nano_infer_host::loaders::{GgufFile, WeightSource};

use crate::common::{GgufWriter, Meta, f32_bytes, ggml_type};
use crate::{assert_format, assert_unsupported};

/// Header field offsets: magic, version, tensor count, metadata count, first key's length.
const VERSION: usize = 4;
const TENSOR_COUNT: usize = 8;
const KV_COUNT: usize = 16;
const FIRST_KEY_LEN: usize = 24;

/// A small valid file: one metadata key, two F32 tensors.
fn base() -> GgufWriter {
    GgufWriter::new(3)
        .meta("general.architecture", Meta::str("llama"))
        .tensor("a", &[2, 8], ggml_type::F32, f32_bytes(&[1.0; 16]))
        .tensor("b", &[8], ggml_type::F32, f32_bytes(&[2.0; 8]))
}

fn err(bytes: Vec<u8>) -> Error {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("a broken file was accepted"),
        Err(e) => e,
    }
}

fn patch(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

#[test]
fn bad_magic_and_versions() {
    let good = base().to_bytes();
    assert!(GgufFile::from_bytes(good.clone()).is_ok());
    assert_format(err(Vec::new()), "magic");
    assert_format(err(b"GGU".to_vec()), "truncated");
    assert_format(err(patch(good.clone(), 0, b"GGML")), "magic");
    assert_unsupported(
        err(patch(good.clone(), VERSION, &1u32.to_le_bytes())),
        "version 1",
    );
    assert_unsupported(
        err(patch(good.clone(), VERSION, &7u32.to_le_bytes())),
        "version 7",
    );
    assert_unsupported(err(patch(good, VERSION, &3u32.to_be_bytes())), "big-endian");
}

#[test]
fn absurd_counts_and_lengths() {
    let good = base().to_bytes();
    let huge = (1u64 << 60).to_le_bytes();
    assert_format(
        err(patch(good.clone(), TENSOR_COUNT, &huge)),
        "tensor count",
    );
    assert_format(err(patch(good.clone(), KV_COUNT, &huge)), "metadata count");
    let key_len = (1u64 << 40).to_le_bytes();
    assert_format(
        err(patch(good.clone(), FIRST_KEY_LEN, &key_len)),
        "cannot fit",
    );
    // One more metadata pair than present: the reader runs off into the tensor infos.
    assert!(GgufFile::from_bytes(patch(good, KV_COUNT, &2u64.to_le_bytes())).is_err());
    // A huge string value and a huge array.
    let mut w = base();
    w.metadata[0].1 = Meta::Array(vec![Meta::U32(1)]).into();
    // key length, key, value type, element type, then the count.
    let count_at = FIRST_KEY_LEN + 8 + "general.architecture".len() + 4 + 4;
    assert_format(err(patch(w.to_bytes(), count_at, &huge)), "cannot fit");
}

#[test]
fn bad_metadata_values() {
    let mut bytes = base().to_bytes();
    let type_at = FIRST_KEY_LEN + 8 + "general.architecture".len();
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    assert_format(err(bytes), "unknown metadata value type 99");

    let bytes = base().meta("flag", Meta::Bool(true)).to_bytes();
    let flag_at = bytes.windows(4).position(|x| x == b"flag").unwrap() + 4 + 4;
    assert_format(err(patch(bytes, flag_at, &[5])), "bool byte is 5");

    let mut nested = Meta::U8(0);
    for _ in 0..20 {
        nested = Meta::Array(vec![nested]);
    }
    assert_format(err(base().meta("deep", nested).to_bytes()), "nested deeper");

    let dup = base().meta("general.architecture", Meta::str("llama"));
    assert_format(err(dup.to_bytes()), "duplicate key");

    let mut bytes = base().meta("x", Meta::str("ab")).to_bytes();
    let s_at = bytes.windows(2).rposition(|x| x == b"ab").unwrap();
    bytes[s_at] = 0xFF;
    assert_format(err(bytes), "not UTF-8");

    for bad in [0u32, 3, 48] {
        let mut w = base().meta("general.alignment", Meta::U32(bad));
        w.alignment = 32; // the writer's own layout stays sane; the reader must refuse the key
        assert_format(err(w.to_bytes()), "power of two");
    }
    let w = base().meta("general.alignment", Meta::str("32"));
    assert_format(err(w.to_bytes()), "general.alignment");
}

#[test]
fn bad_tensor_infos() {
    let mut w = base();
    w.tensors[0].ne = vec![];
    assert_format(err(w.to_bytes()), "0 dimensions");
    let mut w = base();
    w.tensors[0].ne = vec![1; 5];
    assert_format(err(w.to_bytes()), "5 dimensions");
    let mut w = base();
    w.tensors[0].ne = vec![1 << 32, 1 << 32, 1 << 32];
    assert_format(err(w.to_bytes()), "overflow");
    let mut w = base();
    w.tensors[0].ne = vec![u64::MAX / 2, 4];
    assert_format(err(w.to_bytes()), "overflow");

    let mut w = base();
    w.tensors[0].type_id = 99;
    assert_format(err(w.to_bytes()), "unknown ggml type id 99");
    let mut w = base();
    w.tensors[0].type_id = ggml_type::Q5_0;
    assert_unsupported(err(w.to_bytes()), "Q5_0");

    // A Q8_0 row of 31 elements is not a whole block.
    let w = GgufWriter::new(3).tensor("q", &[2, 31], ggml_type::Q8_0, vec![0; 68]);
    assert_format(
        err(w.to_bytes()),
        "not a multiple of the Q8_0 block size 32",
    );

    let dup = base().tensor("a", &[1], ggml_type::F32, f32_bytes(&[0.0]));
    assert_format(err(dup.to_bytes()), "duplicate tensor name");
    let clash = GgufWriter::new(3)
        .tensor("token_embd.weight", &[1], ggml_type::F32, f32_bytes(&[0.0]))
        .tensor(
            "model.embed_tokens.weight",
            &[1],
            ggml_type::F32,
            f32_bytes(&[0.0]),
        );
    assert_format(err(clash.to_bytes()), "two tensors map to the name");
}

#[test]
fn bad_offsets_and_truncated_data() {
    let mut w = base();
    w.tensors[1].offset_override = Some(4);
    assert_format(err(w.to_bytes()), "not a multiple of the alignment");
    let mut w = base();
    w.tensors[1].offset_override = Some(1 << 20);
    assert_format(err(w.to_bytes()), "past the end");
    let mut w = base();
    w.tensors[1].offset_override = Some(u64::MAX - 31);
    assert_format(err(w.to_bytes()), "past the end");
    let mut bytes = base().to_bytes();
    bytes.pop();
    assert_format(err(bytes), "past the end");
}

/// Every prefix of a valid file is an error, and none panics.
#[test]
fn every_truncation_is_an_error() {
    let bytes = crate::round_trip::tiny_llama(3).to_bytes();
    for len in 0..bytes.len() {
        assert!(
            GgufFile::from_bytes(bytes[..len].to_vec()).is_err(),
            "a file cut to {len} of {} bytes was accepted",
            bytes.len()
        );
    }
}

/// Corrupting any header byte gives an error or a file that still reads without panicking.
#[test]
fn corrupted_header_bytes_never_panic() {
    let bytes = crate::round_trip::tiny_llama(3).to_bytes();
    let header_len = GgufFile::from_bytes(bytes.clone()).unwrap().data_start();
    for at in 0..header_len {
        for value in [0x00, 0x01, 0x7F, 0xFF] {
            let mut b = bytes.clone();
            b[at] = value;
            if let Ok(f) = GgufFile::from_bytes(b) {
                let _ = f.llama_config();
                let _ = f.tokenizer_spec();
                for name in f.tensor_names() {
                    let _ = f.to_f32(&name);
                }
            }
        }
    }
}

#[test]
fn bad_config_metadata() {
    let llama = |w: GgufWriter| {
        w.meta("llama.embedding_length", Meta::U32(8))
            .meta("llama.feed_forward_length", Meta::U32(16))
            .meta("llama.attention.head_count", Meta::U32(2))
            .meta("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5))
            .meta("llama.context_length", Meta::U32(64))
            .meta("llama.vocab_size", Meta::U32(10))
    };
    let f = GgufFile::from_bytes(llama(base()).to_bytes()).unwrap();
    assert_format(f.llama_config().unwrap_err(), "llama.block_count");
    let w = llama(base()).meta("llama.block_count", Meta::str("two"));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_format(
        f.llama_config().unwrap_err(),
        "expected a non-negative integer",
    );
    let w = llama(base())
        .meta("llama.block_count", Meta::U32(1))
        .meta("llama.attention.head_count_kv", Meta::U32(3));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_format(f.llama_config().unwrap_err(), "cannot be shared");
    let f = GgufFile::from_bytes(
        llama(base())
            .meta("llama.block_count", Meta::U32(1))
            .to_bytes(),
    );
    let c = f.unwrap().llama_config().unwrap();
    assert_eq!((c.head_dim, c.num_kv_heads, c.vocab_size), (4, 2, 10));

    let mut w = base();
    w.metadata[0].1 = Meta::str("gpt2").into();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_unsupported(f.llama_config().unwrap_err(), "architecture `gpt2`");

    let w = base()
        .meta("tokenizer.ggml.tokens", Meta::strs(&["a", "b"]))
        .meta("tokenizer.ggml.eos_token_id", Meta::U32(2));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_format(
        f.tokenizer_spec().unwrap_err(),
        "past the 2-token vocabulary",
    );
    let w = base()
        .meta("tokenizer.ggml.tokens", Meta::strs(&["a", "b"]))
        .meta("tokenizer.ggml.scores", Meta::Array(vec![Meta::F32(0.0)]));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_format(f.tokenizer_spec().unwrap_err(), "1 entries for 2 tokens");
    let w = base().meta("tokenizer.ggml.tokens", Meta::Array(vec![Meta::U32(1)]));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_format(f.tokenizer_spec().unwrap_err(), "not an array of strings");
}
