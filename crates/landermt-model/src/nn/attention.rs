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

/// Cached keys and values of one layer, after RoPE: buffers `[B, kv_heads, capacity,
/// head_dim]` whose first `len` positions are the cache. A decoding step writes its position
/// into the room left (in place where the buffer is the cache's alone, as on flex), instead of
/// copying the whole cache into a new tensor one position longer; a full buffer doubles.
#[derive(Debug, Clone)]
pub struct LayerCache {
    k: Tensor<4>,
    v: Tensor<4>,
    len: usize,
}

impl LayerCache {
    /// A cache of exactly `k` and `v` (`[B, kv_heads, T, head_dim]`), without room.
    pub fn new(k: Tensor<4>, v: Tensor<4>) -> Self {
        let len = k.dims()[2];
        Self { k, v, len }
    }

    /// The cached keys, `[B, kv_heads, len, head_dim]` (a view of the buffer).
    pub fn keys(&self) -> Tensor<4> {
        self.k.clone().narrow(2, 0, self.len)
    }

    /// The cached values, as [`LayerCache::keys`].
    pub fn values(&self) -> Tensor<4> {
        self.v.clone().narrow(2, 0, self.len)
    }

    /// `self` with `k` and `v` (`[B, kv_heads, t, head_dim]`) appended.
    fn append(mut self, k: Tensor<4>, v: Tensor<4>) -> Self {
        let [b, h, t, d] = k.dims();
        if self.len + t > self.k.dims()[2] {
            let capacity = (2 * self.len).max(self.len + t);
            let grow = |x: Tensor<4>| Tensor::cat(vec![x, Tensor::zeros([b, h, capacity - self.len, d], &k.device())], 2);
            (self.k, self.v) = (grow(self.keys()), grow(self.values()));
        }
        let at = [0..b, 0..h, self.len..self.len + t, 0..d];
        self.k = self.k.slice_assign(at.clone(), k);
        self.v = self.v.slice_assign(at, v);
        self.len += t;
        self
    }

    /// The rows `rows` of the batch (repeats allowed), in that order.
    pub fn select(self, rows: &Tensor<1, burn::tensor::Int>) -> Self {
        Self { k: self.k.select(0, rows.clone()), v: self.v.select(0, rows.clone()), len: self.len }
    }
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
            let layer = match slot.take() {
                Some(past) => past.append(k, v),
                None => LayerCache::new(k, v),
            };
            // Views: dropped by the end of this call, so the buffers are the cache's alone again
            // at the next step's append.
            (k, v) = (layer.keys(), layer.values());
            *slot = Some(layer);
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
