//! One decoder block: `h = x + post_attn(attn(attn_norm(x)))`, `out = h + post_ffn(mlp(ffn_norm(h)))`.
//! BLOOM and LLaMA have no post-norms; Gemma 3 has both ("sandwich" norms).

use burn::module::Module;
use burn::tensor::Tensor;

use super::attention::{Attention, AttentionContext, LayerCache};
use super::mlp::Mlp;
use super::norm::Norm;
use crate::taps::{Site, Taps};

#[derive(Module, Debug)]
pub struct Block {
    pub attn_norm: Norm,
    pub attn: Attention,
    pub post_attn_norm: Option<Norm>,
    pub ffn_norm: Norm,
    pub mlp: Mlp,
    pub post_ffn_norm: Option<Norm>,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>, ctx: &AttentionContext, cache: Option<&mut Option<LayerCache>>, layer: usize, taps: &mut Taps) -> Tensor<3> {
        let mut a = self.attn.forward(self.attn_norm.forward(x.clone()), ctx, cache, layer, taps);
        if let Some(n) = &self.post_attn_norm {
            a = n.forward(a);
        }
        let h = x + a;
        let mut f = self.mlp.forward(self.ffn_norm.forward(h.clone()), layer, taps);
        if let Some(n) = &self.post_ffn_norm {
            f = n.forward(f);
        }
        taps.tap(layer, Site::Block, h + f)
    }
}
