//! Trainable slices of frozen weights. The entries of a partially trained weight are gathered
//! into a small parameter of their own, so the optimizer holds state only for them and cannot
//! touch (or decay) anything else; each forward pass stitches them back:
//! `W_eff = W ⊙ keep + scatter(P)`, with `keep` 0 exactly where P goes, which reproduces P
//! bit for bit (`W·0 + P = P`) and W elsewhere.

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData};
use landermt_model::nn::Block;
use landermt_model::{Site, Transformer};

use crate::method::UnitSet;

/// One sliced weight: `units` of the output (q, k, v, o, gate, up: columns of Burn's
/// `[in, out]`) or of the input (down: rows) of a layer's linear map.
#[derive(Debug, Clone)]
pub struct Slice {
    pub layer: usize,
    pub target: Target,
    pub units: Vec<usize>,
    index: Tensor<1, Int>,
    keep_weight: Tensor<2>,
    keep_bias: Option<Tensor<1>>,
}

/// The linear maps a slice (or a LoRA pair) can target; written `q k v o gate up down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    /// transformers' name of the linear map in a LLaMA-family or Gemma block (PEFT's
    /// `target_modules`), and its path under the block.
    pub fn hf_module(self) -> (&'static str, &'static str) {
        match self {
            Target::Q => ("q_proj", "self_attn.q_proj"),
            Target::K => ("k_proj", "self_attn.k_proj"),
            Target::V => ("v_proj", "self_attn.v_proj"),
            Target::O => ("o_proj", "self_attn.o_proj"),
            Target::Gate => ("gate_proj", "mlp.gate_proj"),
            Target::Up => ("up_proj", "mlp.up_proj"),
            Target::Down => ("down_proj", "mlp.down_proj"),
        }
    }

    /// transformers' name of the linear map in a BLOOM block, and its path under the block;
    /// q, k and v are all the fused `query_key_value`, and BLOOM has no gate.
    pub fn bloom_module(self) -> Option<(&'static str, &'static str)> {
        match self {
            Target::Q | Target::K | Target::V => Some(("query_key_value", "self_attention.query_key_value")),
            Target::O => Some(("dense", "self_attention.dense")),
            Target::Up => Some(("dense_h_to_4h", "mlp.dense_h_to_4h")),
            Target::Down => Some(("dense_4h_to_h", "mlp.dense_4h_to_h")),
            Target::Gate => None,
        }
    }

    /// The dimension of Burn's `[in, out]` weight that indexes the units.
    fn dim(self) -> usize {
        if self == Target::Down { 0 } else { 1 }
    }

    pub(crate) fn linear(self, block: &Block) -> Option<&Linear> {
        match self {
            Target::Q => Some(&block.attn.q_proj),
            Target::K => Some(&block.attn.k_proj),
            Target::V => Some(&block.attn.v_proj),
            Target::O => Some(&block.attn.o_proj),
            Target::Gate => block.mlp.gate_proj.as_ref(),
            Target::Up => Some(&block.mlp.up_proj),
            Target::Down => Some(&block.mlp.down_proj),
        }
    }

    pub(crate) fn linear_mut(self, block: &mut Block) -> Option<&mut Linear> {
        match self {
            Target::Q => Some(&mut block.attn.q_proj),
            Target::K => Some(&mut block.attn.k_proj),
            Target::V => Some(&mut block.attn.v_proj),
            Target::O => Some(&mut block.attn.o_proj),
            Target::Gate => block.mlp.gate_proj.as_mut(),
            Target::Up => Some(&mut block.mlp.up_proj),
            Target::Down => Some(&mut block.mlp.down_proj),
        }
    }

    /// The unit set's site whose units this target's slices hold.
    pub fn site(self) -> Site {
        match self {
            Target::Q => Site::AttnQ,
            Target::K => Site::AttnK,
            Target::V => Site::AttnV,
            Target::O => Site::AttnO,
            Target::Gate | Target::Up | Target::Down => Site::FfnAct,
        }
    }

    /// Whether the units index the rows of Burn's `[in, out]` weight (the down projection's
    /// inputs) rather than its columns.
    pub fn by_rows(self) -> bool {
        self.dim() == 0
    }

    /// The targets a unit set's site maps to.
    fn of(site: Site) -> &'static [Target] {
        match site {
            Site::AttnQ => &[Target::Q],
            Site::AttnK => &[Target::K],
            Site::AttnV => &[Target::V],
            Site::AttnO => &[Target::O],
            Site::FfnAct => &[Target::Gate, Target::Up, Target::Down],
            _ => &[],
        }
    }
}

/// The trainable slices and their parameters. A bias is sliced with the output units it
/// belongs to (the down projection's bias, over hidden units, stays frozen).
#[derive(Module, Debug)]
pub struct Delta {
    pub weights: Vec<Param<Tensor<2>>>,
    pub biases: Vec<Option<Param<Tensor<1>>>>,
    #[module(skip)]
    pub slices: Vec<Slice>,
}

impl Delta {
    /// Slices of `net` for `units`, initialised to the current weights. On an autodiff device
    /// the parameters require gradients.
    pub fn new(net: &Transformer, units: &UnitSet) -> Self {
        let device = net.device();
        let (mut weights, mut biases, mut slices) = (Vec::new(), Vec::new(), Vec::new());
        for (&(layer, site), idx) in units {
            if idx.is_empty() {
                continue;
            }
            for &target in Target::of(site) {
                let Some(lin) = target.linear(&net.layers[layer]) else { continue };
                let dim = target.dim();
                // Trained slices are f32 whatever the frozen weights are stored in.
                let w = lin.weight.val().cast(FloatDType::F32);
                let index = Tensor::<1, Int>::from_data(TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [idx.len()]), &device);
                let keep_weight = keep(w.dims(), dim, idx, &device);
                weights.push(Param::from_tensor(leaf(w.select(dim, index.clone()))));
                let (bias, keep_bias) = match (&lin.bias, dim) {
                    (Some(b), 1) => {
                        let b = b.val();
                        let kb = keep([b.dims()[0], 1], 0, idx, &device).reshape([b.dims()[0]]);
                        (Some(Param::from_tensor(leaf(b.select(0, index.clone())))), Some(kb))
                    }
                    _ => (None, None),
                };
                biases.push(bias);
                slices.push(Slice { layer, target, units: idx.clone(), index, keep_weight, keep_bias });
            }
        }
        Self { weights, biases, slices }
    }

    /// Trainable entries (weights and biases).
    pub fn num_entries(&self) -> usize {
        self.num_params()
    }

    /// `net` with every sliced weight replaced by `W ⊙ keep + scatter(P)`; gradients reach P.
    pub fn stitched(&self, net: &Transformer) -> Transformer {
        let mut net = net.clone();
        for (k, s) in self.slices.iter().enumerate() {
            let lin = s.target.linear_mut(&mut net.layers[s.layer]).expect("slices are made only for existing maps");
            let dim = s.target.dim();
            let w = lin.weight.val().cast(FloatDType::F32).mul(s.keep_weight.clone()).select_assign(dim, s.index.clone(), self.weights[k].val(), IndexingUpdateOp::Add);
            lin.weight = Param::initialized(ParamId::new(), w);
            if let (Some(b), Some(p), Some(kb)) = (lin.bias.as_ref(), self.biases[k].as_ref(), s.keep_bias.as_ref()) {
                let b = b.val().mul(kb.clone()).select_assign(0, s.index.clone(), p.val(), IndexingUpdateOp::Add);
                lin.bias = Some(Param::initialized(ParamId::new(), b));
            }
        }
        net
    }
}

/// A `dims` tensor of ones with zeros at `idx` along `dim`.
fn keep(dims: [usize; 2], dim: usize, idx: &[usize], device: &Device) -> Tensor<2> {
    let mut v = vec![1f32; dims[0] * dims[1]];
    for &i in idx {
        if dim == 0 {
            v[i * dims[1]..(i + 1) * dims[1]].fill(0.0);
        } else {
            (0..dims[0]).for_each(|r| v[r * dims[1] + i] = 0.0);
        }
    }
    Tensor::from_data(TensorData::new(v, dims), device)
}

/// A copy of `t` as a fresh leaf: requiring gradients on an autodiff device, plain otherwise.
fn leaf<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.is_autodiff() { t.inner().autodiff().require_grad() } else { t }
}
