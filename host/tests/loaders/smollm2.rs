//! The real SmolLM2-135M-Instruct Q4_1 GGUF (see `common::smollm2_path`).

use nano_infer_host::loaders::{self, GgufFile, StorageType};
use nano_infer_host::tokenizer::TokenizerKind;

use crate::common::smollm2_path;

#[test]
fn smollm2_config_tokenizer_and_tensors() {
    let src = loaders::open(&smollm2_path()).unwrap();
    assert_eq!(src.format(), "gguf");

    let c = src.llama_config().unwrap();
    assert_eq!(
        (c.num_layers, c.hidden_size, c.intermediate_size),
        (30, 576, 1536)
    );
    assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (9, 3, 64));
    assert_eq!(
        (c.rope_theta, c.vocab_size, c.max_position_embeddings),
        (100000.0, 49152, 8192)
    );
    assert!(
        (c.rms_norm_eps - 1e-5).abs() < 1e-12,
        "eps {}",
        c.rms_norm_eps
    );
    assert!(c.tie_word_embeddings && c.rope_interleaved);

    let t = src
        .tokenizer_spec()
        .unwrap()
        .expect("the GGUF carries a tokenizer");
    assert_eq!(t.kind, Some(TokenizerKind::ByteLevelBpe));
    assert_eq!(
        (t.tokens.len(), t.merges.len(), t.token_types.len()),
        (49152, 48900, 49152)
    );
    assert_eq!(t.pre, "smollm");
    assert_eq!((t.bos_id, t.eos_id), (Some(1), Some(2)));
    assert_eq!(
        (t.tokens[1].as_str(), t.tokens[2].as_str()),
        ("<|im_start|>", "<|im_end|>")
    );
    assert!(!t.add_bos && !t.add_eos);
    assert!(
        t.chat_template
            .as_deref()
            .is_some_and(|s| s.contains("<|im_start|>"))
    );

    let names = src.tensor_names();
    assert_eq!(names.len(), 272);
    assert!(src.tensor_info("lm_head.weight").is_none());
    let count = |ty| {
        names
            .iter()
            .filter(|n| src.tensor_info(n).unwrap().dtype == ty)
            .count()
    };
    assert_eq!(
        (
            count(StorageType::Q4_1),
            count(StorageType::F32),
            count(StorageType::Q8_0)
        ),
        (210, 61, 1)
    );
    let embed = src.tensor_info("model.embed_tokens.weight").unwrap();
    assert_eq!(
        (embed.shape.as_slice(), embed.dtype),
        (&[49152, 576][..], StorageType::Q8_0)
    );
    for i in 0..30 {
        for (suffix, shape) in [
            ("input_layernorm.weight", vec![576]),
            ("self_attn.q_proj.weight", vec![576, 576]),
            ("self_attn.k_proj.weight", vec![192, 576]),
            ("self_attn.v_proj.weight", vec![192, 576]),
            ("self_attn.o_proj.weight", vec![576, 576]),
            ("post_attention_layernorm.weight", vec![576]),
            ("mlp.gate_proj.weight", vec![1536, 576]),
            ("mlp.up_proj.weight", vec![1536, 576]),
            ("mlp.down_proj.weight", vec![576, 1536]),
        ] {
            let name = format!("model.layers.{i}.{suffix}");
            let info = src
                .tensor_info(&name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(info.shape, shape, "{name}");
        }
    }

    let q = src
        .to_f32("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q.len(), 576 * 576);
    assert!(q.iter().all(|v| v.is_finite()));
    let mean_abs = q.iter().map(|v| v.abs() as f64).sum::<f64>() / q.len() as f64;
    let max_abs = q.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((0.01..1.0).contains(&mean_abs), "mean |w| = {mean_abs}");
    assert!(max_abs < 20.0, "max |w| = {max_abs}");
    // 576 × 576 Q4_1 = 10368 blocks of 20 bytes, borrowed straight from the map.
    let raw = src
        .raw_bytes("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(raw.len(), 576 * 576 / 32 * 20);

    let gguf = GgufFile::open(&smollm2_path()).unwrap();
    assert_eq!((gguf.version(), gguf.alignment()), (3, 32));
}
