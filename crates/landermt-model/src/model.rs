//! The decoder-only transformer shared by every architecture: embeddings, blocks, final norm
//! and LM head, with left-padded batches, a KV cache, and taps for activations and gradients.

use burn::module::{Module, Param};
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};

use crate::config::{LayerAttention, ModelConfig, NormKind, Positions};
use crate::nn::attention::{AttentionContext, LayerCache};
use crate::nn::{Block, Norm, alibi, rope};
use crate::taps::{Site, Taps};

#[derive(Module, Debug)]
pub struct Transformer {
    /// `[vocab, hidden]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// BLOOM's `word_embeddings_layernorm`.
    pub embed_norm: Option<Norm>,
    pub layers: Vec<Block>,
    pub final_norm: Norm,
    /// `[hidden, vocab]`; `None` when the head is tied to the embeddings.
    pub lm_head: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub config: ModelConfig,
    /// Greedy decoding's bf16 screen of the tied head (`crate::screen`), built by
    /// `LanguageModel::into_decoding`; `None` computes the f32 logits.
    #[module(skip)]
    pub screen: Option<std::sync::Arc<crate::screen::ScreenedHead>>,
}

/// Token ids of B sequences padded on the left to a common length T, with the mask of real
/// tokens. Row-major `[B, T]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
    pub rows: usize,
    pub len: usize,
}

impl Batch {
    /// One unpadded sequence.
    pub fn single(ids: &[u32]) -> Self {
        Self { ids: ids.to_vec(), mask: vec![true; ids.len()], rows: 1, len: ids.len() }
    }

    /// Left-pads `seqs` with `pad_id` (decoder-only models continue from the right edge).
    pub fn left_padded(seqs: &[Vec<u32>], pad_id: u32) -> Self {
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * len);
        let mut mask = Vec::with_capacity(seqs.len() * len);
        for s in seqs {
            let pad = len - s.len();
            ids.extend(std::iter::repeat_n(pad_id, pad).chain(s.iter().copied()));
            mask.extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, s.len())));
        }
        Self { ids, mask, rows: seqs.len(), len }
    }

    pub fn mask_row(&self, r: usize) -> &[bool] {
        &self.mask[r * self.len..(r + 1) * self.len]
    }
}

/// Keys and values of every layer for the positions processed so far, and which of those
/// positions are real tokens.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    key_mask: Vec<Vec<bool>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers], key_mask: Vec::new() }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.key_mask.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the rows `rows` (repeats allowed), in that order: beam search's reordering.
    pub fn select(&mut self, rows: &[usize]) {
        let Some(device) = self.layers.iter().flatten().next().map(|c| c.keys().device()) else { return };
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]), &device);
        for slot in &mut self.layers {
            *slot = slot.take().map(|c| c.select(&idx));
        }
        self.key_mask = rows.iter().map(|&r| self.key_mask[r].clone()).collect();
    }

    /// The rows of `self` followed by those of `other`, the shorter cache padded on the left
    /// with masked positions. Positions count real tokens only, so padding shifts nothing:
    /// continuous batching adds freshly prefilled rows to a batch this way.
    pub fn merge(self, other: KvCache) -> KvCache {
        if self.key_mask.is_empty() {
            return other;
        }
        if other.key_mask.is_empty() {
            return self;
        }
        let len = self.len().max(other.len());
        let pad = |c: KvCache| -> (Vec<Option<(Tensor<4>, Tensor<4>)>>, Vec<Vec<bool>>) {
            let extra = len - c.len();
            let mask = c.key_mask.into_iter().map(|row| std::iter::repeat_n(false, extra).chain(row).collect()).collect();
            let pad4 = |t: Tensor<4>| {
                if extra == 0 {
                    return t;
                }
                let [b, h, _, d] = t.dims();
                Tensor::cat(vec![Tensor::zeros([b, h, extra, d], &t.device()), t], 2)
            };
            let layers = c.layers.into_iter().map(|l| l.map(|l| (pad4(l.keys()), pad4(l.values())))).collect();
            (layers, mask)
        };
        let ((a, mut mask), (b, other_mask)) = (pad(self), pad(other));
        mask.extend(other_mask);
        let layers = a
            .into_iter()
            .zip(b)
            .map(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => Some(LayerCache::new(Tensor::cat(vec![x.0, y.0], 0), Tensor::cat(vec![x.1, y.1], 0))),
                (x, y) => x.or(y).map(|(k, v)| LayerCache::new(k, v)),
            })
            .collect();
        KvCache { layers, key_mask: mask }
    }
}

/// Additive score bias value for masked positions (transformers uses the dtype's minimum too,
/// so a fully masked row, i.e. a padding query, becomes uniform instead of NaN).
const MASKED: f32 = f32::MIN;

impl Transformer {
    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

    /// Runs the blocks on `batch` and returns the final-normed hidden states `[B, T, hidden]`.
    /// With `cache`, the batch continues the cached sequences (same rows) and the cache grows.
    pub fn forward(&self, batch: &Batch, mut cache: Option<&mut KvCache>, taps: &mut Taps) -> Tensor<3> {
        let cfg = &self.config;
        let device = self.device();
        let (b, t) = (batch.rows, batch.len);
        let empty_past = vec![Vec::new(); b];
        let past_mask = cache.as_ref().filter(|c| !c.key_mask.is_empty()).map_or(&empty_past, |c| &c.key_mask);
        assert_eq!(past_mask.len(), b, "the batch must have the cache's rows");
        let past = past_mask[0].len();

        // Key validity over cache + new tokens; positions count the real tokens before each one.
        let key_mask: Vec<Vec<bool>> = (0..b).map(|r| past_mask[r].iter().copied().chain(batch.mask_row(r).iter().copied()).collect()).collect();
        let key_positions: Vec<Vec<i64>> = key_mask
            .iter()
            .map(|row| {
                let mut n = -1i64;
                row.iter()
                    .map(|&m| {
                        if m {
                            n += 1;
                            n
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        let query_positions: Vec<Vec<i64>> = key_positions.iter().map(|p| p[past..].to_vec()).collect();

        let mut x = self.embed(batch, &device);
        x = taps.tap(0, Site::Embedding, x);

        // One score bias per distinct attention kind; ALiBi adds the per-head key bias.
        let alibi = matches!(cfg.positions, Positions::Alibi).then(|| alibi::bias(cfg.num_heads, &key_positions, &device));
        let mut biases: Vec<(LayerAttention, Tensor<4>)> = Vec::new();
        for kind in &cfg.layer_attention {
            if !biases.iter().any(|(k, _)| k == kind) {
                let mut bias = mask_bias(&key_mask, past, t, *kind, &device);
                if let Some(a) = &alibi {
                    bias = bias.add(a.clone());
                }
                biases.push((*kind, bias));
            }
        }
        let (global_rope, local_rope) = match cfg.positions {
            Positions::Rope { theta, local_theta } => {
                let g = rope::tables(theta, cfg.head_dim, &query_positions, &device);
                let l = local_theta.map(|lt| rope::tables(lt, cfg.head_dim, &query_positions, &device));
                (Some(g), l)
            }
            Positions::Alibi => (None, None),
        };

        for (i, block) in self.layers.iter().enumerate() {
            let kind = cfg.layer_attention[i];
            let rope = match kind {
                LayerAttention::Sliding { .. } => local_rope.as_ref().or(global_rope.as_ref()),
                LayerAttention::Full => global_rope.as_ref(),
            };
            let bias = &biases.iter().find(|(k, _)| *k == kind).expect("bias built for every kind").1;
            let ctx = AttentionContext { rope, bias };
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = block.forward(x, &ctx, slot, i, taps);
        }
        if let Some(c) = cache {
            c.key_mask = key_mask;
        }
        self.final_norm.forward(x)
    }

    /// transformers' `output_hidden_states` for `batch`: the embedding output, the outputs of
    /// blocks 0..L−2, then the final norm of the last block's output (L+1 entries; the last one
    /// is what [`logits`](Self::logits) takes).
    pub fn hidden_states(&self, batch: &Batch) -> Vec<Tensor<3>> {
        let mut taps = Taps::recording([Site::Embedding, Site::Block]);
        let last = self.forward(batch, None, &mut taps);
        let mut states = vec![taps.recorded[&(0, Site::Embedding)].clone()];
        states.extend((0..self.config.num_layers - 1).map(|l| taps.recorded[&(l, Site::Block)].clone()));
        states.push(last);
        states
    }

    fn embed(&self, batch: &Batch, device: &Device) -> Tensor<3> {
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [batch.ids.len()]), device);
        let hidden = self.config.hidden_size;
        // Rows of a bf16 embedding are widened: activations are f32 whatever the weights are.
        let rows = self.embed_tokens.val().select(0, ids).cast(FloatDType::F32);
        let mut x = rows.reshape([batch.rows, batch.len, hidden]);
        if let Some(scale) = self.config.embedding_scale {
            // transformers multiplies by the scale rounded to the weights' dtype (f32 here).
            x = x.mul_scalar(scale as f32);
        }
        if let Some(n) = &self.embed_norm {
            x = n.forward(x);
        }
        x
    }

    /// Logits `[B, T, vocab]` of final-normed hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, h] = hidden.dims();
        match &self.lm_head {
            // One `[B·T, h]` product, multi-threaded (see `nn::project`).
            Some(w) => hidden.reshape([b * t, h]).matmul(w.val()).reshape([b, t, self.config.vocab_size]),
            // Tied head: `hidden · Eᵀ` would materialise the transpose of the (often largest)
            // embedding matrix on every call; `(E · hiddenᵀ)ᵀ` only transposes the small operands.
            None => {
                let flat = hidden.reshape([b * t, h]).transpose();
                self.embed_tokens.val().matmul(flat).transpose().reshape([b, t, self.config.vocab_size])
            }
        }
    }
}

/// `[B, 1, Tq, Tk]`: 0 where query i (at absolute index past + i) may attend key j, else
/// [`MASKED`]. Keys must be real tokens, not in the future, and within the window if sliding
/// (transformers: `kv_idx > q_idx - window`).
fn mask_bias(key_mask: &[Vec<bool>], past: usize, tq: usize, kind: LayerAttention, device: &Device) -> Tensor<4> {
    let (b, tk) = (key_mask.len(), past + tq);
    let mut data = Vec::with_capacity(b * tq * tk);
    for row in key_mask {
        for i in 0..tq {
            let q = past + i;
            data.extend((0..tk).map(|j| {
                let in_window = match kind {
                    LayerAttention::Full => true,
                    LayerAttention::Sliding { window } => q < j + window,
                };
                if row[j] && j <= q && in_window { 0.0 } else { MASKED }
            }));
        }
    }
    Tensor::from_data(TensorData::new(data, [b, 1, tq, tk]), device)
}

/// Builds a norm from host weights.
pub(crate) fn norm(weight: crate::weights::HostTensor, bias: Option<crate::weights::HostTensor>, kind: NormKind, eps: f64, device: &Device) -> Norm {
    Norm { weight: Param::from_tensor(crate::nn::tensor1(weight, device)), bias: bias.map(|b| Param::from_tensor(crate::nn::tensor1(b, device))), kind, eps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(key_mask: &[Vec<bool>], past: usize, tq: usize, kind: LayerAttention) -> Vec<Vec<u8>> {
        let t = mask_bias(key_mask, past, tq, kind, &Device::flex());
        let tk = past + tq;
        let data: Vec<f32> = t.into_data().try_into_vec().unwrap();
        data.chunks_exact(tk).map(|row| row.iter().map(|&x| u8::from(x == 0.0)).collect()).collect()
    }

    #[test]
    fn masks_are_causal_skip_padding_and_slide() {
        // One row: a pad, then three tokens; no cache.
        let row = vec![vec![false, true, true, true]];
        assert_eq!(allowed(&row, 0, 4, LayerAttention::Full), vec![vec![0, 0, 0, 0], vec![0, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 1, 1, 1]]);
        // Window 2: a query sees itself and the one before (transformers: kv > q − window).
        assert_eq!(allowed(&row, 0, 4, LayerAttention::Sliding { window: 2 }), vec![vec![0, 0, 0, 0], vec![0, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 0, 1, 1]]);
        // With two cached positions, the one new query is position 2.
        let cached = vec![vec![true, true, true]];
        assert_eq!(allowed(&cached, 2, 1, LayerAttention::Full), vec![vec![1, 1, 1]]);
        assert_eq!(allowed(&cached, 2, 1, LayerAttention::Sliding { window: 2 }), vec![vec![0, 1, 1]]);
    }
}
