//! The architecture-independent description of a model: what the shared attention, norm and
//! FFN pieces need to know. Each architecture module fills it from a Hugging Face
//! `config.json` or from GGUF metadata.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Bloom,
    /// LLaMA and the models built like it (Mistral without sliding windows, Qwen2 with q/k/v bias).
    Llama,
    Gemma3,
}

/// How positions enter attention.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Positions {
    /// BLOOM: a per-head linear bias on key distance.
    Alibi,
    /// Rotary embeddings on q and k (`rotate_half` layout); `local_theta` is the base of
    /// sliding-window layers where it differs (Gemma 3).
    Rope { theta: f64, local_theta: Option<f64> },
}

/// Which tokens a layer's attention sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerAttention {
    Full,
    /// Causal attention over the last `window` positions only (the query's own included).
    Sliding {
        window: usize,
    },
}

/// Norm flavour shared by all norms of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// LayerNorm with weight and bias (BLOOM).
    LayerNorm,
    /// RMSNorm, `x / rms(x) * w` (LLaMA).
    Rms,
    /// RMSNorm scaled by `(1 + w)`, computed in f32 (Gemma).
    RmsPlusOne,
}

/// FFN activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `down(gelu_tanh(up(x)))` (BLOOM).
    GeluTanh,
    /// `down(silu(gate(x)) * up(x))` (LLaMA).
    SwiGlu,
    /// `down(gelu_tanh(gate(x)) * up(x))` (Gemma).
    GeGluTanh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub activation: Activation,
    pub positions: Positions,
    /// One entry per layer.
    pub layer_attention: Vec<LayerAttention>,
    /// Scale applied to q·k (1/sqrt(head_dim) unless the model says otherwise).
    pub attention_scale: f64,
    /// Whether q, k, v (and for BLOOM every linear) carry a bias.
    pub attention_bias: bool,
    pub mlp_bias: bool,
    /// Gemma: RMSNorm on q and k per head, and norms after attention and after the FFN.
    pub qk_norm: bool,
    pub sandwich_norms: bool,
    /// BLOOM: LayerNorm on the word embeddings.
    pub embedding_norm: bool,
    /// Gemma: embeddings are multiplied by sqrt(hidden_size) (rounded to the weights' dtype).
    pub embedding_scale: Option<f64>,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

impl ModelConfig {
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
    pub fn is_gated(&self) -> bool {
        self.activation != Activation::GeluTanh
    }

    /// Checks the invariants the forward pass relies on; `origin` names the file for errors.
    pub fn validate(&self, origin: &std::path::Path) -> crate::Result<()> {
        let fail = |msg: String| Err(crate::ModelError::config(origin, msg));
        if self.num_layers == 0 || self.hidden_size == 0 || self.vocab_size == 0 || self.num_heads == 0 {
            return fail("layers, hidden size, heads and vocabulary must be positive".into());
        }
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return fail(format!("{} attention heads are not a multiple of {} key/value heads", self.num_heads, self.num_kv_heads));
        }
        if self.layer_attention.len() != self.num_layers {
            return fail(format!("{} layer types for {} layers", self.layer_attention.len(), self.num_layers));
        }
        if matches!(self.positions, Positions::Rope { .. }) && !self.head_dim.is_multiple_of(2) {
            return fail(format!("rotary embeddings need an even head_dim, got {}", self.head_dim));
        }
        Ok(())
    }
}
