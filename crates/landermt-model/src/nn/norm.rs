//! LayerNorm and the two RMSNorm flavours. Statistics are taken in f32 like transformers.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::config::NormKind;

#[derive(Module, Debug)]
pub struct Norm {
    pub weight: Param<Tensor<1>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub kind: NormKind,
    #[module(skip)]
    pub eps: f64,
}

impl Norm {
    /// Normalises over the last dimension: RMSNorm in one pass where nothing tracks gradients
    /// (`super::fused_norm`), the tensor ops otherwise.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let plus_one = match self.kind {
            NormKind::LayerNorm => return self.tensor_ops(x),
            NormKind::Rms => false,
            NormKind::RmsPlusOne => true,
        };
        if !super::on_host(&x) || self.weight.val().is_autodiff() {
            return self.tensor_ops(x);
        }
        let w: Vec<f32> = self.weight.val().into_data().convert::<f32>().try_into_vec().expect("norm weights convert to f32");
        let factor: Vec<f32> = if plus_one { w.iter().map(|w| w + 1.0).collect() } else { w };
        super::fused_norm::rms(x, &factor, self.eps as f32)
    }

    /// The norm from tensor ops, which autodiff can differentiate.
    pub(crate) fn tensor_ops<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let w = self.weight.val().unsqueeze::<D>();
        match self.kind {
            NormKind::LayerNorm => {
                let (var, mean) = x.clone().var_mean_bias(D - 1);
                let y = (x - mean).div(var.add_scalar(self.eps).sqrt());
                let y = y.mul(w);
                match &self.bias {
                    Some(b) => y.add(b.val().unsqueeze::<D>()),
                    None => y,
                }
            }
            NormKind::Rms => rms(x, self.eps).mul(w),
            NormKind::RmsPlusOne => rms(x, self.eps).mul(w.add_scalar(1.0)),
        }
    }
}

fn rms<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let ms = x.clone().square().mean_dim(D - 1);
    x.mul(ms.add_scalar(eps).sqrt().recip())
}
