//! Multi-head attention with grouped key/value heads, optional per-head q/k norms (Gemma 3),
//! rotary or ALiBi positions, and a KV cache for incremental decoding.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::norm::Norm;
use super::rope::{self, RopeTables};
use crate::taps::{Site, Taps};

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<Norm>,
    pub k_norm: Option<Norm>,
    #[module(skip)]
    pub num_heads: usize,
    #[module(skip)]
    pub num_kv_heads: usize,
    #[module(skip)]
    pub head_dim: usize,
    #[module(skip)]
    pub scale: f64,
}

/// What a layer's attention needs besides its input: the rotary tables (if any) and the
/// additive score bias `[B, 1 | heads, Tq, Tk]` (masking, plus ALiBi where used).
pub struct AttentionContext<'a> {
    pub rope: Option<&'a RopeTables>,
    pub bias: &'a Tensor<4>,
}

/// Cached keys and values of one layer, `[B, kv_heads, T_past, head_dim]`, after RoPE.
#[derive(Debug, Clone)]
pub struct LayerCache {
    pub k: Tensor<4>,
    pub v: Tensor<4>,
}

impl Attention {
    /// An attention layer with the head layout and scale of `cfg`. Projections are Burn
    /// `Linear`s (`[in, out]` weights, see `nn::linear`).
    pub fn new(cfg: &crate::config::ModelConfig, [q_proj, k_proj, v_proj, o_proj]: [Linear; 4], qk_norms: Option<(Norm, Norm)>) -> Self {
        let (q_norm, k_norm) = qk_norms.unzip();
        Self { q_proj, k_proj, v_proj, o_proj, q_norm, k_norm, num_heads: cfg.num_heads, num_kv_heads: cfg.num_kv_heads, head_dim: cfg.head_dim, scale: cfg.attention_scale }
    }

    fn heads(&self, x: Tensor<3>, n: usize) -> Tensor<4> {
        let [b, t, _] = x.dims();
        x.reshape([b, t, n, self.head_dim]).swap_dims(1, 2)
    }

    /// `x: [B, T, hidden]` → `[B, T, hidden]`. With `cache`, the new keys and values are
    /// appended to it and attention covers the cached positions too.
    pub fn forward(&self, x: Tensor<3>, ctx: &AttentionContext, cache: Option<&mut Option<LayerCache>>, layer: usize, taps: &mut Taps) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let q = taps.tap(layer, Site::AttnQ, super::project(&self.q_proj, x.clone()));
        let k = taps.tap(layer, Site::AttnK, super::project(&self.k_proj, x.clone()));
        let v = taps.tap(layer, Site::AttnV, super::project(&self.v_proj, x));
        let mut q = self.heads(q, self.num_heads);
        let mut k = self.heads(k, self.num_kv_heads);
        let mut v = self.heads(v, self.num_kv_heads);
        if let Some(n) = &self.q_norm {
            q = n.forward(q);
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(k);
        }
        if let Some(tables) = ctx.rope {
            q = rope::apply(q, tables);
            k = rope::apply(k, tables);
        }
        if let Some(slot) = cache {
            if let Some(past) = slot.take() {
                k = Tensor::cat(vec![past.k, k], 2);
                v = Tensor::cat(vec![past.v, v], 2);
            }
            *slot = Some(LayerCache { k: k.clone(), v: v.clone() });
        }
        let scores = self.grouped(q).matmul(k.swap_dims(2, 3));
        let scores = self.ungrouped(scores, t);
        let probs = if super::on_host(&scores) { super::fused_softmax::softmax(scores, self.scale as f32, ctx.bias) } else { softmax(scores.mul_scalar(self.scale).add(ctx.bias.clone()), 3) };
        let out = self.ungrouped(self.grouped(probs).matmul(v), t);
        let out = out.swap_dims(1, 2).reshape([b, t, self.num_heads * self.head_dim]);
        taps.tap(layer, Site::AttnO, super::project(&self.o_proj, out))
    }

    /// `[B, heads, T, w]` → `[B, kv_heads, groups·T, w]`: the query heads that share a kv head
    /// (head h reads kv head `h / groups`, as transformers' `repeat_kv`) stacked as rows of one
    /// product, so keys and values are never copied per query head.
    fn grouped(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, w] = x.dims();
        x.reshape([b, self.num_kv_heads, h / self.num_kv_heads * t, w])
    }

    /// The inverse of `grouped`: `[B, kv_heads, groups·T, w]` → `[B, heads, T, w]`.
    fn ungrouped(&self, x: Tensor<4>, t: usize) -> Tensor<4> {
        let [b, _, _, w] = x.dims();
        x.reshape([b, self.num_heads, t, w])
    }
}
