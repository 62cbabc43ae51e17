//! The feed-forward network. Its intermediate activation (the input of the down projection,
//! after the activation and, for gated FFNs, the gate product) is METHOD.md's neuron `h`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::router::{CarMode, Router};
use crate::config::Activation;
use crate::taps::{Site, Taps};

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Option<Linear>,
    pub up_proj: Linear,
    pub down_proj: Linear,
    #[module(skip)]
    pub activation: Activation,
    /// CAR routing (stage 3) in the selected layers of a routed model.
    pub router: Option<Router>,
    /// A bottleneck adapter on the FFN's output (the `adapter` baselines).
    pub adapter: Option<super::adapter::Adapter>,
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the tanh GELU of BLOOM and Gemma — computed
/// as `x·σ(2·√(2/π)·x·(1 + 0.044715·x²))`, the same function (`(1 + tanh z)/2 = σ(2z)`) in six
/// tensor ops instead of eight and without `powf`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let c = 2.0 * (2.0 / std::f64::consts::PI).sqrt();
    let z = x.clone().square().mul_scalar(c * 0.044715).add_scalar(c).mul(x.clone());
    x.mul(burn::tensor::activation::sigmoid(z))
}

impl Mlp {
    /// The intermediate units `h(x)`: the activation of the up projection, times the gate
    /// for gated FFNs.
    pub fn act(&self, x: Tensor<3>) -> Tensor<3> {
        let up = super::project(&self.up_proj, x.clone());
        if super::on_host(&up) {
            return match &self.gate_proj {
                Some(g) => super::fused_act::gated(self.activation, super::project(g, x), Some(up)),
                None => super::fused_act::gated(self.activation, up, None),
            };
        }
        match (self.activation, &self.gate_proj) {
            (Activation::GeluTanh, _) => gelu_tanh(up),
            (Activation::SwiGlu, Some(g)) => silu(super::project(g, x)).mul(up),
            (Activation::GeGluTanh, Some(g)) => gelu_tanh(super::project(g, x)).mul(up),
            (_, None) => unreachable!("gated activations are built with a gate projection"),
        }
    }

    /// `act(gate·x)` (gated FFNs) or `act(up·x)`: the activation LAPE counts.
    pub fn gate_act(&self, x: Tensor<3>) -> Tensor<3> {
        let pre = super::project(self.gate_proj.as_ref().unwrap_or(&self.up_proj), x.clone());
        if super::on_host(&pre) {
            // The kernel `act` uses, so that an ungated FFN's count sees its units' own values.
            return super::fused_act::gated(self.activation, pre, None);
        }
        match (self.activation, &self.gate_proj) {
            (Activation::SwiGlu, Some(g)) => silu(super::project(g, x)),
            (Activation::GeGluTanh, Some(g)) => gelu_tanh(super::project(g, x)),
            _ => gelu_tanh(super::project(&self.up_proj, x)),
        }
    }

    pub fn forward(&self, x: Tensor<3>, layer: usize, taps: &mut Taps) -> Tensor<3> {
        if taps.records(Site::FfnGate) {
            taps.tap(layer, Site::FfnGate, self.gate_act(x.clone()));
        }
        let h = match &self.router {
            Some(r) if r.mode() != CarMode::Off => r.route(x, &|x| self.act(x)),
            _ => self.act(x),
        };
        let h = taps.tap(layer, Site::FfnAct, h);
        let y = taps.tap(layer, Site::FfnDown, super::project(&self.down_proj, h));
        match &self.adapter {
            Some(a) => a.forward(y),
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn gelu_tanh_equals_the_tanh_formula_in_f64() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
        let t = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &Device::flex());
        let got: Vec<f32> = super::gelu_tanh(t).into_data().try_into_vec().unwrap();
        for (&x, &g) in xs.iter().zip(&got) {
            let x = x as f64;
            let want = 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((g as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()), "x = {x}: {g} vs {want}");
        }
    }
}
