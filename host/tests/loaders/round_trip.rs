//! Valid files written here with hand-computed blocks, read back through [`WeightSource`].

use half::f16;
use nano_infer_host::loaders::{self, GgufFile, SafetensorsModel, StorageType, WeightSource};
use nano_infer_host::tokenizer::TokenizerKind;

use crate::common::{
    GgufWriter, Meta, bf16_bytes, f16_bytes, f32_bytes, ggml_type, safetensors_bytes, temp_dir,
};

/// Round-trips an f32 through f16, as a block scale is stored.
fn h(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

fn scale(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// Two Q8_0 blocks: d = 0.5 with q = j − 16, then d = 0.125 with q = 100 − 3j.
fn q8_0_data() -> (Vec<u8>, Vec<f32>) {
    let mut bytes = scale(0.5).to_vec();
    bytes.extend((0..32).map(|j| (j - 16) as i8 as u8));
    bytes.extend(scale(0.125));
    bytes.extend((0..32).map(|j| (100 - 3 * j) as i8 as u8));
    let mut values: Vec<f32> = (0..32).map(|j| (j - 16) as f32 * 0.5).collect();
    values.extend((0..32).map(|j| (100 - 3 * j) as f32 * 0.125));
    (bytes, values)
}

/// Nibbles with element j in the low half of byte j and element j + 16 in the high half:
/// low = j, high = 15 − j.
fn nibbles() -> Vec<u8> {
    (0..16u8).map(|j| j | ((15 - j) << 4)).collect()
}

/// Two Q4_0 blocks (d = 0.25, then 2.0): value (q − 8)·d.
fn q4_0_data() -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut values = Vec::new();
    for d in [0.25f32, 2.0] {
        bytes.extend(scale(d));
        bytes.extend(nibbles());
        values.extend((0..16).map(|j| (j as f32 - 8.0) * d));
        values.extend((0..16).map(|j| (7.0 - j as f32) * d));
    }
    (bytes, values)
}

/// Two Q4_1 blocks along one row, (d, m) = (0.5, −1) then (0.1, 3): value q·d + m, with d and m
/// as stored in f16.
fn q4_1_data() -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut values = Vec::new();
    for (d, m) in [(0.5f32, -1.0f32), (0.1, 3.0)] {
        bytes.extend(scale(d));
        bytes.extend(scale(m));
        bytes.extend(nibbles());
        values.extend((0..16).map(|j| j as f32 * h(d) + h(m)));
        values.extend((0..16).map(|j| (15 - j) as f32 * h(d) + h(m)));
    }
    (bytes, values)
}

fn norm_values() -> Vec<f32> {
    (0..32).map(|i| i as f32 * 0.5).collect()
}

fn up_values() -> Vec<f32> {
    (0..96).map(|i| i as f32 * 0.25 - 4.0).collect()
}

fn out_norm_values() -> Vec<f32> {
    (0..32).map(|i| 1.0 + i as f32 / 8.0).collect()
}

/// A one-layer Llama GGUF: hidden 32, 4 heads / 2 KV heads, vocab 2, ffn 3.
pub fn tiny_llama(version: u32) -> GgufWriter {
    GgufWriter::new(version)
        .meta("general.architecture", Meta::str("llama"))
        .meta("llama.embedding_length", Meta::U32(32))
        .meta("llama.feed_forward_length", Meta::U32(3))
        .meta("llama.block_count", Meta::U32(1))
        .meta("llama.attention.head_count", Meta::U32(4))
        .meta("llama.attention.head_count_kv", Meta::U32(2))
        .meta("llama.rope.freq_base", Meta::F32(500000.0))
        .meta("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-6))
        .meta("llama.context_length", Meta::U64(128))
        .meta("tokenizer.ggml.model", Meta::str("llama"))
        .meta("tokenizer.ggml.tokens", Meta::strs(&["<s>", "</s>"]))
        .meta(
            "tokenizer.ggml.scores",
            Meta::Array(vec![Meta::F32(0.0), Meta::F32(-1.5)]),
        )
        .meta(
            "tokenizer.ggml.token_type",
            Meta::Array(vec![Meta::I32(3), Meta::I32(3)]),
        )
        .meta("tokenizer.ggml.bos_token_id", Meta::U32(0))
        .meta("tokenizer.ggml.eos_token_id", Meta::U32(1))
        .meta("tokenizer.ggml.padding_token_id", Meta::U32(7)) // past the vocab: dropped
        .meta("tokenizer.chat_template", Meta::str("{{ messages }}"))
        .meta(
            "test.nested",
            Meta::Array(vec![Meta::Array(vec![Meta::U8(1)]), Meta::Array(vec![])]),
        )
        .tensor(
            "token_embd.weight",
            &[2, 32],
            ggml_type::Q8_0,
            q8_0_data().0,
        )
        .tensor(
            "blk.0.attn_q.weight",
            &[2, 32],
            ggml_type::Q4_0,
            q4_0_data().0,
        )
        .tensor(
            "blk.0.attn_k.weight",
            &[1, 64],
            ggml_type::Q4_1,
            q4_1_data().0,
        )
        .tensor(
            "blk.0.attn_norm.weight",
            &[32],
            ggml_type::F32,
            f32_bytes(&norm_values()),
        )
        .tensor(
            "blk.0.ffn_up.weight",
            &[3, 32],
            ggml_type::F16,
            f16_bytes(&up_values()),
        )
        .tensor(
            "output_norm.weight",
            &[32],
            ggml_type::BF16,
            bf16_bytes(&out_norm_values()),
        )
        .tensor(
            "my.extra",
            &[2, 3],
            ggml_type::F32,
            f32_bytes(&[1., 2., 3., 4., 5., 6.]),
        )
}

/// Everything a reader must get back from [`tiny_llama`].
fn check_tiny_llama(src: &dyn WeightSource) {
    assert_eq!(src.format(), "gguf");
    let names = src.tensor_names();
    assert_eq!(
        names,
        [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.norm.weight",
            "my.extra",
        ]
    );
    let expect = [
        (
            "model.embed_tokens.weight",
            vec![2, 32],
            StorageType::Q8_0,
            q8_0_data().1,
        ),
        (
            "model.layers.0.self_attn.q_proj.weight",
            vec![2, 32],
            StorageType::Q4_0,
            q4_0_data().1,
        ),
        (
            "model.layers.0.self_attn.k_proj.weight",
            vec![1, 64],
            StorageType::Q4_1,
            q4_1_data().1,
        ),
        (
            "model.layers.0.input_layernorm.weight",
            vec![32],
            StorageType::F32,
            norm_values(),
        ),
        (
            "model.layers.0.mlp.up_proj.weight",
            vec![3, 32],
            StorageType::F16,
            up_values(),
        ),
        (
            "model.norm.weight",
            vec![32],
            StorageType::BF16,
            out_norm_values(),
        ),
        (
            "my.extra",
            vec![2, 3],
            StorageType::F32,
            vec![1., 2., 3., 4., 5., 6.],
        ),
    ];
    for (name, shape, dtype, values) in expect {
        let info = src.tensor_info(name).expect(name);
        assert_eq!((&info.shape, info.dtype), (&shape, dtype), "{name}");
        assert_eq!(src.to_f32(name).unwrap(), values, "{name}");
    }
    assert_eq!(
        src.raw_bytes("model.embed_tokens.weight").unwrap(),
        q8_0_data().0
    );
    assert!(src.tensor_info("lm_head.weight").is_none());
    assert!(matches!(
        src.to_f32("lm_head.weight"),
        Err(nano_infer_host::Error::MissingTensor { .. })
    ));

    let c = src.llama_config().unwrap();
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_layers
        ),
        (2, 32, 3, 1)
    );
    assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (4, 2, 8));
    assert_eq!(
        (c.rope_theta, c.rms_norm_eps, c.max_position_embeddings),
        (500000.0, 1e-6, 128)
    );
    assert!(c.tie_word_embeddings && c.rope_interleaved);

    let t = src.tokenizer_spec().unwrap().expect("tokenizer");
    assert_eq!(t.kind, Some(TokenizerKind::SentencePiece));
    assert_eq!(t.tokens, ["<s>", "</s>"]);
    assert_eq!(
        (t.scores.clone(), t.token_types.clone()),
        (vec![0.0, -1.5], vec![3, 3])
    );
    assert_eq!(
        (t.bos_id, t.eos_id, t.unk_id, t.pad_id),
        (Some(0), Some(1), None, None)
    );
    assert!(t.add_bos && !t.add_eos, "SentencePiece adds BOS by default");
    assert_eq!(t.pre, "default");
    assert_eq!(t.chat_template.as_deref(), Some("{{ messages }}"));
}

#[test]
fn gguf_v3_round_trip_through_a_file() {
    let dir = temp_dir("gguf-v3");
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_llama(3).to_bytes()).unwrap();
    let src = loaders::open(&path).unwrap();
    check_tiny_llama(src.as_ref());

    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!((gguf.version(), gguf.alignment()), (3, 32));
    assert_eq!(gguf.data_start() % 32, 0);
    assert_eq!(
        gguf.gguf_name("model.norm.weight"),
        Some("output_norm.weight")
    );
    let nested = gguf.metadata("test.nested").unwrap();
    assert_eq!(nested.as_array().map(|a| a.len()), Some(2));
}

#[test]
fn gguf_v2_round_trip_with_custom_alignment() {
    let bytes = tiny_llama(2)
        .meta("general.alignment", Meta::U32(64))
        .to_bytes();
    let gguf = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!((gguf.version(), gguf.alignment()), (2, 64));
    assert_eq!(gguf.data_start() % 64, 0);
    check_tiny_llama(&gguf);
}

#[test]
fn gguf_untied_head_vocab_size_key_and_gpt2_defaults() {
    let bytes = tiny_llama(3)
        .meta("llama.vocab_size", Meta::U32(2))
        .meta("tokenizer.ggml.pre", Meta::str("smollm"))
        .meta("tokenizer.ggml.merges", Meta::strs(&["a b"]))
        .tensor(
            "output.weight",
            &[2, 32],
            ggml_type::F32,
            f32_bytes(&[0.0; 64]),
        )
        .to_bytes();
    let mut gguf = GgufFile::from_bytes(bytes).unwrap();
    assert!(!gguf.llama_config().unwrap().tie_word_embeddings);
    assert_eq!(gguf.tensor_info("lm_head.weight").unwrap().shape, [2, 32]);

    // tokenizer.ggml.model = gpt2: byte-level BPE, no BOS by default.
    let mut w = tiny_llama(3);
    for (k, v) in &mut w.metadata {
        if k == "tokenizer.ggml.model" {
            *v = Meta::str("gpt2").into();
        }
    }
    w = w.meta("tokenizer.ggml.merges", Meta::strs(&["a b", "ab c"]));
    gguf = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let t = gguf.tokenizer_spec().unwrap().unwrap();
    assert_eq!(t.kind, Some(TokenizerKind::ByteLevelBpe));
    assert_eq!(t.merges, ["a b", "ab c"]);
    assert!(!t.add_bos);
}

#[test]
fn gguf_k_quant_tensors_are_read() {
    let q4k = vec![0u8; 144];
    let mut q6k = vec![0u8; 210];
    q6k[128..192].fill(0b10_10_10_10); // every q = 32 → 0 after the offset
    let bytes = GgufWriter::new(3)
        .tensor("a", &[256], ggml_type::Q4_K, q4k)
        .tensor("b", &[256], ggml_type::Q6_K, q6k)
        .to_bytes();
    let gguf = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(gguf.tensor_info("a").unwrap().dtype, StorageType::Q4_K);
    assert_eq!(gguf.to_f32("a").unwrap(), vec![0.0; 256]);
    assert_eq!(gguf.to_f32("b").unwrap(), vec![0.0; 256]);
    assert!(gguf.tokenizer_spec().unwrap().is_none());
}

const CONFIG_JSON: &str = r#"{"model_type": "llama", "hidden_size": 4, "intermediate_size": 6,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
    "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 64,
    "tie_word_embeddings": true, "vocab_size": 3}"#;

fn st_tensors() -> Vec<(&'static str, &'static str, &'static [usize], Vec<u8>)> {
    let embed: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
    vec![
        (
            "model.embed_tokens.weight",
            "F32",
            &[3, 4],
            f32_bytes(&embed),
        ),
        (
            "model.norm.weight",
            "BF16",
            &[4],
            bf16_bytes(&[1.0, 1.5, 2.0, -0.5]),
        ),
        (
            "model.layers.0.mlp.up_proj.weight",
            "F16",
            &[6, 4],
            f16_bytes(&[0.25; 24]),
        ),
    ]
}

fn check_safetensors(src: &dyn WeightSource) {
    assert_eq!(src.format(), "safetensors");
    let c = src.llama_config().unwrap();
    assert_eq!(
        (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim),
        (4, 2, 1, 2)
    );
    assert!(c.tie_word_embeddings && !c.rope_interleaved);
    assert!(src.tokenizer_spec().unwrap().is_none());
    let embed = src.to_f32("model.embed_tokens.weight").unwrap();
    assert_eq!(embed, (0..12).map(|i| i as f32 - 6.0).collect::<Vec<_>>());
    assert_eq!(
        src.tensor_info("model.norm.weight").unwrap().dtype,
        StorageType::BF16
    );
    assert_eq!(
        src.to_f32("model.norm.weight").unwrap(),
        [1.0, 1.5, 2.0, -0.5]
    );
    let up = src
        .tensor_info("model.layers.0.mlp.up_proj.weight")
        .unwrap();
    assert_eq!(
        (up.shape.as_slice(), up.dtype),
        (&[6, 4][..], StorageType::F16)
    );
    assert_eq!(src.to_f32(&up.name).unwrap(), vec![0.25; 24]);
    assert_eq!(
        src.raw_bytes("model.norm.weight").unwrap(),
        bf16_bytes(&[1.0, 1.5, 2.0, -0.5])
    );
}

#[test]
fn safetensors_single_file_round_trip() {
    let dir = temp_dir("st-single");
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors_bytes(&st_tensors()),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), CONFIG_JSON).unwrap();
    check_safetensors(loaders::open(&dir).unwrap().as_ref());
    check_safetensors(
        loaders::open(&dir.join("model.safetensors"))
            .unwrap()
            .as_ref(),
    );
    let names = loaders::open(&dir).unwrap().tensor_names();
    assert_eq!(names.len(), 3);
    let in_memory = SafetensorsModel::from_bytes(
        vec![safetensors_bytes(&st_tensors())],
        Some(CONFIG_JSON.into()),
    )
    .unwrap();
    check_safetensors(&in_memory);
}

#[test]
fn safetensors_sharded_round_trip() {
    let dir = temp_dir("st-sharded");
    let t = st_tensors();
    std::fs::write(dir.join("a.safetensors"), safetensors_bytes(&t[..1])).unwrap();
    std::fs::write(dir.join("b.safetensors"), safetensors_bytes(&t[1..])).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG_JSON).unwrap();
    let index = r#"{"metadata": {"total_size": 0}, "weight_map": {
        "model.embed_tokens.weight": "a.safetensors",
        "model.norm.weight": "b.safetensors",
        "model.layers.0.mlp.up_proj.weight": "b.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    check_safetensors(loaders::open(&dir).unwrap().as_ref());
    check_safetensors(
        loaders::open(&dir.join("model.safetensors.index.json"))
            .unwrap()
            .as_ref(),
    );
}
