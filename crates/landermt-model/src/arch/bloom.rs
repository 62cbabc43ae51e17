//! BLOOM: ALiBi positions, LayerNorm (also on the word embeddings), tanh GELU MLP, biases on
//! every linear layer, head tied to the embeddings. The fused `query_key_value` projection is
//! split into q, k and v on load so that attention is shared with the other architectures.
//!
//! Weight names come with or without the `transformer.` prefix (checkpoints saved from
//! `BloomModel`, like the bigscience ones, have none).

use super::{HfConfig, Loader, gguf_opt_f64, gguf_token_ids, gguf_usize, gguf_vocab};
use crate::config::{Activation, Architecture, LayerAttention, ModelConfig, NormKind, Positions};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::model::Transformer;
use crate::nn::{Attention, Block, Mlp};
use crate::weights::HostTensor;

fn config(hidden: usize, heads: usize, layers: usize, vocab: usize, eps: f64) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Bloom,
        vocab_size: vocab,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: hidden / heads.max(1),
        intermediate_size: 4 * hidden,
        norm: NormKind::LayerNorm,
        norm_eps: eps,
        activation: Activation::GeluTanh,
        positions: Positions::Alibi,
        layer_attention: vec![LayerAttention::Full; layers],
        attention_scale: 1.0 / ((hidden / heads.max(1)) as f64).sqrt(),
        attention_bias: true,
        mlp_bias: true,
        qk_norm: false,
        sandwich_norms: false,
        embedding_norm: true,
        embedding_scale: None,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: Vec::new(),
        pad_token_id: None,
    }
}

pub(crate) fn config_from_hf(c: &HfConfig) -> Result<ModelConfig> {
    if c.bool("apply_residual_connection_post_layernorm", false) {
        return Err(ModelError::unsupported(c.path, "BLOOM with apply_residual_connection_post_layernorm"));
    }
    let hidden = c.usize(&["hidden_size", "n_embed"])?;
    let heads = c.usize(&["n_head", "num_attention_heads"])?;
    if heads == 0 || hidden % heads != 0 {
        return Err(ModelError::config(c.path, format!("hidden_size {hidden} is not a multiple of n_head {heads}")));
    }
    let mut cfg = config(hidden, heads, c.usize(&["n_layer", "num_hidden_layers"])?, c.usize(&["vocab_size"])?, c.f64(&["layer_norm_epsilon"], Some(1e-5))?);
    cfg.bos_token_id = c.ids("bos_token_id").first().copied();
    cfg.eos_token_ids = c.ids("eos_token_id");
    cfg.pad_token_id = c.ids("pad_token_id").first().copied();
    Ok(cfg)
}

pub(crate) fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let hidden = gguf_usize(g, "bloom.embedding_length")?;
    let heads = gguf_usize(g, "bloom.attention.head_count")?;
    let eps = gguf_opt_f64(g, "bloom.attention.layer_norm_epsilon").unwrap_or(1e-5);
    let mut cfg = config(hidden, heads, gguf_usize(g, "bloom.block_count")?, gguf_vocab(g, "bloom")?, eps);
    (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = gguf_token_ids(g);
    Ok(cfg)
}

/// Splits the fused QKV rows into (q, k, v). Hugging Face interleaves per head
/// (`[heads, 3, head_dim]`); llama.cpp's GGUF stores `[Q | K | V]` blocks.
pub(crate) fn split_qkv(t: &HostTensor, heads: usize, head_dim: usize, interleaved: bool) -> [HostTensor; 3] {
    let hidden = heads * head_dim;
    if !interleaved {
        return [t.rows(0, hidden), t.rows(hidden, 2 * hidden), t.rows(2 * hidden, 3 * hidden)];
    }
    let cols: usize = t.shape[1..].iter().product();
    std::array::from_fn(|s| {
        let mut data = Vec::with_capacity(hidden * cols);
        for h in 0..heads {
            let start = (h * 3 + s) * head_dim * cols;
            data.extend_from_slice(&t.data[start..start + head_dim * cols]);
        }
        let mut shape = t.shape.clone();
        shape[0] = hidden;
        HostTensor::new(data, shape)
    })
}

pub(crate) fn load(l: &Loader) -> Result<Transformer> {
    let c = l.cfg;
    let prefix = if l.weights.contains("transformer.word_embeddings.weight") { "transformer." } else { "" };
    let h = c.hidden_size;
    let interleaved = !l.is_gguf();
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let p = format!("{prefix}h.{i}");
        let qkv_w = l.get(&format!("{p}.self_attention.query_key_value.weight"), &[3 * h, h])?;
        let qkv_b = l.get(&format!("{p}.self_attention.query_key_value.bias"), &[3 * h])?;
        let [qw, kw, vw] = split_qkv(&qkv_w, c.num_heads, c.head_dim, interleaved);
        let [qb, kb, vb] = split_qkv(&qkv_b, c.num_heads, c.head_dim, interleaved);
        drop((qkv_w, qkv_b));
        layers.push(Block {
            attn_norm: l.norm(&format!("{p}.input_layernorm"), h)?,
            attn: Attention::new(c, [l.linear_of(qw, Some(qb)), l.linear_of(kw, Some(kb)), l.linear_of(vw, Some(vb)), l.linear(&format!("{p}.self_attention.dense"), h, h, true)?], None),
            post_attn_norm: None,
            ffn_norm: l.norm(&format!("{p}.post_attention_layernorm"), h)?,
            mlp: Mlp {
                gate_proj: None,
                up_proj: l.linear(&format!("{p}.mlp.dense_h_to_4h"), 4 * h, h, true)?,
                down_proj: l.linear(&format!("{p}.mlp.dense_4h_to_h"), h, 4 * h, true)?,
                activation: c.activation,
                router: None,
                adapter: None,
            },
            post_ffn_norm: None,
        });
    }
    let embed = l.get(&format!("{prefix}word_embeddings.weight"), &[c.vocab_size, h])?;
    Ok(Transformer {
        embed_tokens: l.matrix(embed),
        embed_norm: Some(l.norm(&format!("{prefix}word_embeddings_layernorm"), h)?),
        layers,
        final_norm: l.norm(&format!("{prefix}ln_f"), h)?,
        lm_head: None,
        config: c.clone(),
        screen: None,
    })
}
