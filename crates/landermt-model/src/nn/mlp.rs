//! The feed-forward network. Its intermediate activation (the input of the down projection,
//! after the activation and, for gated FFNs, the gate product) is METHOD.md's neuron `h`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use crate::config::Activation;
use crate::taps::{Site, Taps};

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Option<Linear>,
    pub up_proj: Linear,
    pub down_proj: Linear,
    #[module(skip)]
    pub activation: Activation,
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the tanh GELU of BLOOM and Gemma.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let inner = x.clone().add(x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.mul_scalar(0.5).mul(inner.tanh().add_scalar(1.0))
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>, layer: usize, taps: &mut Taps) -> Tensor<3> {
        let up = self.up_proj.forward(x.clone());
        let h = match (self.activation, &self.gate_proj) {
            (Activation::GeluTanh, _) => gelu_tanh(up),
            (Activation::SwiGlu, Some(g)) => silu(g.forward(x)).mul(up),
            (Activation::GeGluTanh, Some(g)) => gelu_tanh(g.forward(x)).mul(up),
            (_, None) => unreachable!("gated activations are built with a gate projection"),
        };
        let h = taps.tap(layer, Site::FfnAct, h);
        taps.tap(layer, Site::FfnDown, self.down_proj.forward(h))
    }
}
