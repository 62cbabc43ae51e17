//! LLaMA and models built like it: RMSNorm, SwiGLU, rotary positions (`rotate_half` layout),
//! grouped-query attention, tied or untied head, optional q/k/v bias (Qwen2).
//!
//! GGUF files written by llama.cpp permute the q and k rows for its interleaved RoPE; we undo
//! it as transformers' `_reverse_permute_weights` does.

use super::{HfConfig, Loader, gguf_opt_f64, gguf_token_ids, gguf_usize, gguf_vocab};
use crate::config::{Activation, Architecture, LayerAttention, ModelConfig, NormKind, Positions};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::model::Transformer;
use crate::nn::{Attention, Block, Mlp};
use crate::weights::HostTensor;

pub(crate) fn config_from_hf(c: &HfConfig, model_type: &str) -> Result<ModelConfig> {
    if model_type == "mistral" && c.get("sliding_window").is_some() {
        return Err(ModelError::unsupported(c.path, "Mistral with a sliding window"));
    }
    if model_type == "qwen2" && c.bool("use_sliding_window", false) {
        return Err(ModelError::unsupported(c.path, "Qwen2 with use_sliding_window"));
    }
    let hidden = c.usize(&["hidden_size"])?;
    let heads = c.usize(&["num_attention_heads"])?;
    let head_dim = c.opt_usize(&["head_dim"])?.unwrap_or(hidden / heads.max(1));
    let layers = c.usize(&["num_hidden_layers"])?;
    let act = c.get("hidden_act").and_then(|a| a.as_str()).unwrap_or("silu");
    if act != "silu" {
        return Err(ModelError::unsupported(c.path, format!("hidden_act `{act}` for a LLaMA-style model")));
    }
    Ok(ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: c.usize(&["vocab_size"])?,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: c.opt_usize(&["num_key_value_heads"])?.unwrap_or(heads),
        head_dim,
        intermediate_size: c.usize(&["intermediate_size"])?,
        norm: NormKind::Rms,
        norm_eps: c.f64(&["rms_norm_eps"], Some(1e-6))?,
        activation: Activation::SwiGlu,
        positions: Positions::Rope { theta: c.rope_theta(None, 10_000.0)?, local_theta: None },
        layer_attention: vec![LayerAttention::Full; layers],
        attention_scale: 1.0 / (head_dim as f64).sqrt(),
        attention_bias: model_type == "qwen2" || c.bool("attention_bias", false),
        mlp_bias: c.bool("mlp_bias", false),
        qk_norm: false,
        sandwich_norms: false,
        embedding_norm: false,
        embedding_scale: None,
        tie_word_embeddings: c.bool("tie_word_embeddings", false),
        bos_token_id: c.ids("bos_token_id").first().copied(),
        eos_token_ids: c.ids("eos_token_id"),
        pad_token_id: c.ids("pad_token_id").first().copied(),
    })
}

pub(crate) fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let hidden = gguf_usize(g, "llama.embedding_length")?;
    let heads = gguf_usize(g, "llama.attention.head_count")?;
    let layers = gguf_usize(g, "llama.block_count")?;
    let head_dim = g.get("llama.rope.dimension_count").and_then(|v| v.as_u64()).map_or(hidden / heads.max(1), |v| v as usize);
    let (bos, eos, pad) = gguf_token_ids(g);
    Ok(ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: gguf_vocab(g, "llama")?,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: g.get("llama.attention.head_count_kv").and_then(|v| v.as_u64()).map_or(heads, |v| v as usize),
        head_dim,
        intermediate_size: gguf_usize(g, "llama.feed_forward_length")?,
        norm: NormKind::Rms,
        norm_eps: gguf_opt_f64(g, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
        activation: Activation::SwiGlu,
        positions: Positions::Rope { theta: gguf_opt_f64(g, "llama.rope.freq_base").unwrap_or(10_000.0), local_theta: None },
        layer_attention: vec![LayerAttention::Full; layers],
        attention_scale: 1.0 / (head_dim as f64).sqrt(),
        attention_bias: g.tensors.contains_key("blk.0.attn_q.bias"),
        mlp_bias: false,
        qk_norm: false,
        sandwich_norms: false,
        embedding_norm: false,
        embedding_scale: None,
        tie_word_embeddings: !g.tensors.contains_key("output.weight"),
        bos_token_id: bos,
        eos_token_ids: eos,
        pad_token_id: pad,
    })
}

/// Reorders the rows of each head's block from `[a, b]` to `[b, a]` (numpy:
/// `reshape(heads, a, b, …).swapaxes(1, 2)`). llama.cpp's q/k permutation is
/// `(2, d/2)` → `(d/2, 2)`; undoing it is `(d/2, 2)` → `(2, d/2)`.
fn swap_row_axes(t: HostTensor, heads: usize, a: usize, b: usize) -> HostTensor {
    let cols: usize = t.shape[1..].iter().product();
    debug_assert_eq!(t.shape[0], heads * a * b);
    let mut out = vec![0.0; t.data.len()];
    for h in 0..heads {
        for i in 0..a {
            for j in 0..b {
                let src = (h * a + i) * b + j;
                let dst = (h * b + j) * a + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    HostTensor::new(out, t.shape)
}

/// Undoes llama.cpp's q/k row permutation (transformers' `_reverse_permute_weights`).
fn unpermute_rows(t: HostTensor, heads: usize) -> HostTensor {
    let half = t.shape[0] / heads / 2;
    swap_row_axes(t, heads, half, 2)
}

/// llama.cpp's q/k row permutation for its interleaved RoPE, as its converter applies it (the
/// inverse of [`unpermute_rows`]; the GGUF export writes it).
pub(crate) fn permute_rows(t: HostTensor, heads: usize) -> HostTensor {
    let half = t.shape[0] / heads / 2;
    swap_row_axes(t, heads, 2, half)
}

pub(crate) fn load(l: &Loader) -> Result<Transformer> {
    let c = l.cfg;
    let (h, q, kv, ffn) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
    let mut layers = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        let (q_name, k_name) = (format!("{p}.self_attn.q_proj"), format!("{p}.self_attn.k_proj"));
        let (q_proj, k_proj) = if l.is_gguf() {
            (gguf_unpermuted(l, &q_name, q, h, c.num_heads)?, gguf_unpermuted(l, &k_name, kv, h, c.num_kv_heads)?)
        } else {
            (l.linear(&q_name, q, h, c.attention_bias)?, l.linear(&k_name, kv, h, c.attention_bias)?)
        };
        layers.push(Block {
            attn_norm: l.norm(&format!("{p}.input_layernorm"), h)?,
            attn: Attention::new(c, [q_proj, k_proj, l.linear(&format!("{p}.self_attn.v_proj"), kv, h, c.attention_bias)?, l.linear(&format!("{p}.self_attn.o_proj"), h, q, false)?], None),
            post_attn_norm: None,
            ffn_norm: l.norm(&format!("{p}.post_attention_layernorm"), h)?,
            mlp: Mlp {
                gate_proj: Some(l.linear(&format!("{p}.mlp.gate_proj"), ffn, h, c.mlp_bias)?),
                up_proj: l.linear(&format!("{p}.mlp.up_proj"), ffn, h, c.mlp_bias)?,
                down_proj: l.linear(&format!("{p}.mlp.down_proj"), h, ffn, c.mlp_bias)?,
                activation: c.activation,
                router: None,
                adapter: None,
            },
            post_ffn_norm: None,
        });
    }
    let embed = l.get("model.embed_tokens.weight", &[c.vocab_size, h])?;
    let lm_head = if c.tie_word_embeddings { None } else { Some(l.get("lm_head.weight", &[c.vocab_size, h])?) };
    Ok(Transformer {
        embed_tokens: l.matrix(embed),
        embed_norm: None,
        layers,
        final_norm: l.norm("model.norm", h)?,
        lm_head: lm_head.map(|w| l.matrix(w.transposed())),
        config: c.clone(),
        screen: None,
    })
}

/// A q or k projection from a GGUF file, with llama.cpp's row permutation undone.
fn gguf_unpermuted(l: &Loader, prefix: &str, d_out: usize, d_in: usize, heads: usize) -> Result<burn::nn::Linear> {
    let w = unpermute_rows(l.get(&format!("{prefix}.weight"), &[d_out, d_in])?, heads);
    let b = l.opt(&format!("{prefix}.bias"), &[d_out])?.map(|b| unpermute_rows(b, heads));
    Ok(l.linear_of(w, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's `permute`: reshape(heads, 2, d/2, …).swapaxes(1, 2).
    fn permute_rows(t: &HostTensor, heads: usize) -> HostTensor {
        swap_row_axes(t.clone(), heads, 2, t.shape[0] / heads / 2)
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // One head of dim 4, one column: numpy's reshape(1, 2, 2, 1).swapaxes(1, 2) turns rows
        // [0, 1, 2, 3] into [0, 2, 1, 3].
        let hf = HostTensor::new(vec![0.0, 1.0, 2.0, 3.0], vec![4, 1]);
        assert_eq!(permute_rows(&hf, 1).data, vec![0.0, 2.0, 1.0, 3.0]);
        let t = HostTensor::new((0..48).map(|x| x as f32).collect(), vec![12, 4]);
        assert_eq!(unpermute_rows(permute_rows(&t, 3), 3), t);
    }
}
