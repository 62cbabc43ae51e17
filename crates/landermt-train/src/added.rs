//! Modules added for the parameter-efficient baselines: LoRA pairs on chosen linear maps
//! (`W + A·B·α/r`, B = 0 at the start) and bottleneck adapters after every FFN. Both start as
//! the identity change, so an untrained baseline is the base model exactly.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{FloatDType, Tensor, TensorData};
use landermt_model::Transformer;
use landermt_model::nn::Adapter;
use serde::{Deserialize, Serialize};

use crate::delta::Target;
use landermt_data::mix;

/// Sizes of the added modules (`[train]` keys `lora_rank`, `lora_alpha`, `lora_targets`,
/// `adapter_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AddedSettings {
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_targets: Vec<Target>,
    pub adapter_size: usize,
}

impl Default for AddedSettings {
    fn default() -> Self {
        Self { lora_rank: 8, lora_alpha: 16.0, lora_targets: vec![Target::Q, Target::K, Target::V, Target::O], adapter_size: 64 }
    }
}

/// Uniform numbers in [0, 1) from a seed and a stream number: reproducible initialisation.
pub fn uniform(seed: u64, stream: u64) -> impl Iterator<Item = f32> {
    (0u64..).map(move |i| (mix(seed ^ mix(stream) ^ i) >> 40) as f32 / (1u64 << 24) as f32)
}

/// LoRA pairs on `targets` of every layer.
#[derive(Module, Debug)]
pub struct Lora {
    /// `[in, r]`, uniform in ±1/√in (PEFT's Kaiming-uniform bound).
    pub a: Vec<Param<Tensor<2>>>,
    /// `[r, out]`, zeros at the start.
    pub b: Vec<Param<Tensor<2>>>,
    #[module(skip)]
    pub targets: Vec<(usize, Target)>,
    pub scale: f64,
}

impl Lora {
    pub fn new(net: &Transformer, s: &AddedSettings, seed: u64) -> Self {
        let device = net.device();
        let (mut a, mut b, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for (layer, block) in net.layers.iter().enumerate() {
            for &target in &s.lora_targets {
                let Some(lin) = target.linear(block) else { continue };
                let [d_in, d_out] = lin.weight.dims();
                let bound = 1.0 / (d_in as f32).sqrt();
                let values: Vec<f32> = uniform(seed, (layer * 16 + target as usize) as u64).take(d_in * s.lora_rank).map(|u| (2.0 * u - 1.0) * bound).collect();
                a.push(Param::from_tensor(Tensor::from_data(TensorData::new(values, [d_in, s.lora_rank]), &device)));
                b.push(Param::from_tensor(Tensor::zeros([s.lora_rank, d_out], &device)));
                targets.push((layer, target));
            }
        }
        Self { a, b, targets, scale: s.lora_alpha / s.lora_rank as f64 }
    }

    /// `net` with every target's weight replaced by `W + A·B·α/r`.
    pub fn apply(&self, mut net: Transformer) -> Transformer {
        for (k, &(layer, target)) in self.targets.iter().enumerate() {
            let lin = target.linear_mut(&mut net.layers[layer]).expect("LoRA targets exist");
            // In f32: a bf16 base is widened (the merged weight is f32 for the step).
            let w = lin.weight.val().cast(FloatDType::F32).add(self.a[k].val().matmul(self.b[k].val()).mul_scalar(self.scale));
            lin.weight = Param::initialized(ParamId::new(), w);
        }
        net
    }
}

/// Puts a fresh adapter after the FFN of every layer.
pub fn add_adapters(mut net: Transformer, size: usize, seed: u64) -> Transformer {
    let device = net.device();
    let hidden = net.config.hidden_size;
    for (layer, block) in net.layers.iter_mut().enumerate() {
        block.mlp.adapter = Some(Adapter::new(hidden, size, uniform(seed, 1000 + layer as u64), &device));
    }
    net
}
