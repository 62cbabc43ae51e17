//! Gemma 3 (text): embeddings scaled by sqrt(hidden), RMSNorm with `(1 + w)`, RMSNorm on q and k
//! per head, norms before and after both attention and FFN, GeGLU with tanh GELU, separate
//! RoPE bases for sliding-window and global layers, head tied to the embeddings.
//!
//! GGUF files store each norm weight as `w + 1` (llama.cpp's RMSNorm multiplies by `w`);
//! transformers subtracts 1 on load and we do the same, so the arithmetic matches it exactly.

use super::{HfConfig, Loader, gguf_opt_f64, gguf_token_ids, gguf_usize, gguf_vocab};
use crate::config::{Activation, Architecture, LayerAttention, ModelConfig, NormKind, Positions};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::model::Transformer;
use crate::nn::{Attention, Block, Mlp, Norm};

/// Transformers' defaults for what GGUF metadata does not carry.
const LOCAL_ROPE_THETA: f64 = 10_000.0;
const QUERY_PRE_ATTN_SCALAR: f64 = 256.0;
const SLIDING_WINDOW_PATTERN: usize = 6;

/// Every `pattern`-th layer (1-based) is global, the others slide over `window` tokens.
fn layer_pattern(layers: usize, pattern: usize, window: usize) -> Vec<LayerAttention> {
    (0..layers).map(|i| if (i + 1) % pattern == 0 { LayerAttention::Full } else { LayerAttention::Sliding { window } }).collect()
}

#[allow(clippy::too_many_arguments)]
fn config(
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    eps: f64,
    theta: f64,
    local_theta: f64,
    layer_attention: Vec<LayerAttention>,
    query_pre_attn_scalar: f64,
) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Gemma3,
        vocab_size: vocab,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size: ffn,
        norm: NormKind::RmsPlusOne,
        norm_eps: eps,
        activation: Activation::GeGluTanh,
        positions: Positions::Rope { theta, local_theta: Some(local_theta) },
        layer_attention,
        attention_scale: query_pre_attn_scalar.powf(-0.5),
        attention_bias: false,
        mlp_bias: false,
        qk_norm: true,
        sandwich_norms: true,
        embedding_norm: false,
        embedding_scale: Some((hidden as f64).sqrt()),
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_ids: Vec::new(),
        pad_token_id: None,
    }
}

pub(crate) fn config_from_hf(c: &HfConfig) -> Result<ModelConfig> {
    for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if c.get(key).is_some() {
            return Err(ModelError::unsupported(c.path, format!("Gemma 3 with `{key}`")));
        }
    }
    let act = c.get("hidden_activation").and_then(|a| a.as_str()).unwrap_or("gelu_pytorch_tanh");
    if act != "gelu_pytorch_tanh" {
        return Err(ModelError::unsupported(c.path, format!("hidden_activation `{act}`")));
    }
    let layers = c.usize(&["num_hidden_layers"])?;
    let window = c.usize(&["sliding_window"])?;
    let layer_attention = match c.get("layer_types").and_then(|t| t.as_array()) {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(LayerAttention::Full),
                Some("sliding_attention") => Ok(LayerAttention::Sliding { window }),
                other => Err(ModelError::config(c.path, format!("unknown layer type {other:?}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        None => layer_pattern(layers, c.opt_usize(&["sliding_window_pattern"])?.unwrap_or(SLIDING_WINDOW_PATTERN), window),
    };
    // transformers 5 nests the bases per layer type under `rope_parameters`.
    let params = c.get("rope_parameters");
    let (theta, local_theta) = match params.and_then(|p| p.get("full_attention")) {
        Some(full) => (c.rope_theta(Some(full), 1_000_000.0)?, c.rope_theta(params.and_then(|p| p.get("sliding_attention")), LOCAL_ROPE_THETA)?),
        None => (c.rope_theta(None, 1_000_000.0)?, c.f64(&["rope_local_base_freq"], Some(LOCAL_ROPE_THETA))?),
    };
    let heads = c.usize(&["num_attention_heads"])?;
    let mut cfg = config(
        c.usize(&["vocab_size"])?,
        c.usize(&["hidden_size"])?,
        layers,
        heads,
        c.opt_usize(&["num_key_value_heads"])?.unwrap_or(heads),
        c.usize(&["head_dim"])?,
        c.usize(&["intermediate_size"])?,
        c.f64(&["rms_norm_eps"], Some(1e-6))?,
        theta,
        local_theta,
        layer_attention,
        c.f64(&["query_pre_attn_scalar"], Some(QUERY_PRE_ATTN_SCALAR))?,
    );
    cfg.bos_token_id = c.ids("bos_token_id").first().copied();
    cfg.eos_token_ids = c.ids("eos_token_id");
    cfg.pad_token_id = c.ids("pad_token_id").first().copied();
    Ok(cfg)
}

pub(crate) fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let layers = gguf_usize(g, "gemma3.block_count")?;
    let heads = gguf_usize(g, "gemma3.attention.head_count")?;
    let window = gguf_usize(g, "gemma3.attention.sliding_window")?;
    let mut cfg = config(
        gguf_vocab(g, "gemma3")?,
        gguf_usize(g, "gemma3.embedding_length")?,
        layers,
        heads,
        g.get("gemma3.attention.head_count_kv").and_then(|v| v.as_u64()).map_or(heads, |v| v as usize),
        gguf_usize(g, "gemma3.attention.key_length")?,
        gguf_usize(g, "gemma3.feed_forward_length")?,
        gguf_opt_f64(g, "gemma3.attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
        gguf_opt_f64(g, "gemma3.rope.freq_base").unwrap_or(1_000_000.0),
        LOCAL_ROPE_THETA,
        layer_pattern(layers, SLIDING_WINDOW_PATTERN, window),
        QUERY_PRE_ATTN_SCALAR,
    );
    (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = gguf_token_ids(g);
    Ok(cfg)
}

/// A `(1 + w)` norm; from GGUF the stored multiplier has 1 subtracted first.
fn norm(l: &Loader, prefix: &str, dim: usize) -> Result<Norm> {
    let mut w = l.get(&format!("{prefix}.weight"), &[dim])?;
    if l.is_gguf() {
        w.data.iter_mut().for_each(|x| *x -= 1.0);
    }
    Ok(crate::model::norm(w, None, l.cfg.norm, l.cfg.norm_eps, l.device))
}

pub(crate) fn load(l: &Loader) -> Result<Transformer> {
    let c = l.cfg;
    let (h, q, kv, ffn, hd) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size, c.head_dim);
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        layers.push(Block {
            attn_norm: norm(l, &format!("{p}.input_layernorm"), h)?,
            attn: Attention::new(
                c,
                [
                    l.linear(&format!("{p}.self_attn.q_proj"), q, h, false)?,
                    l.linear(&format!("{p}.self_attn.k_proj"), kv, h, false)?,
                    l.linear(&format!("{p}.self_attn.v_proj"), kv, h, false)?,
                    l.linear(&format!("{p}.self_attn.o_proj"), h, q, false)?,
                ],
                Some((norm(l, &format!("{p}.self_attn.q_norm"), hd)?, norm(l, &format!("{p}.self_attn.k_norm"), hd)?)),
            ),
            post_attn_norm: Some(norm(l, &format!("{p}.post_attention_layernorm"), h)?),
            ffn_norm: norm(l, &format!("{p}.pre_feedforward_layernorm"), h)?,
            mlp: Mlp {
                gate_proj: Some(l.linear(&format!("{p}.mlp.gate_proj"), ffn, h, false)?),
                up_proj: l.linear(&format!("{p}.mlp.up_proj"), ffn, h, false)?,
                down_proj: l.linear(&format!("{p}.mlp.down_proj"), h, ffn, false)?,
                activation: c.activation,
                router: None,
                adapter: None,
            },
            post_ffn_norm: Some(norm(l, &format!("{p}.post_feedforward_layernorm"), h)?),
        });
    }
    let embed = l.get("model.embed_tokens.weight", &[c.vocab_size, h])?;
    Ok(Transformer { embed_tokens: l.matrix(embed), embed_norm: None, layers, final_norm: norm(l, "model.norm", h)?, lm_head: None, config: c.clone(), screen: None })
}
