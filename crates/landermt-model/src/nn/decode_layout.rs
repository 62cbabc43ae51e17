//! The decoding layout: a model that only runs forward keeps its blocks' weight matrices
//! column-major. A decoding step multiplies a few rows by each weight; with W row-major
//! (Burn's `[in, out]`), sgemm packs all of W for every step, while with W column-major each
//! output column is a contiguous row that `crate::skinny` reads where it lies, as `(Wᵀ · xᵀ)ᵀ`.
//! Larger products (prefill) pass the layout to sgemm as a transpose flag, at the same cost.
//!
//! Only the layout changes: every weight keeps its shape and values, so the model computes
//! the same function, up to the order of float sums.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Tensor};

use crate::model::Transformer;

/// `net` with every f32 or bf16 matrix of its blocks stored column-major, on flex outside autodiff;
/// elsewhere unchanged. The embedding stays row-major: the tied head reads its rows.
pub fn column_major(mut net: Transformer) -> Transformer {
    if !crate::nn::on_host(&net.embed_tokens.val()) {
        return net;
    }
    net.layers = net.layers.into_iter().map(|block| block.map(&mut ColumnMajor)).collect();
    net
}

struct ColumnMajor;

impl ModuleMapper for ColumnMajor {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let t = p.val();
        if D != 2 || !matches!(t.dtype(), DType::F32 | DType::BF16) || t.is_require_grad() {
            return p;
        }
        // Wᵀ made contiguous, then viewed as W again: the same [in, out] matrix, column-major.
        let transposed = Tensor::<D>::from_data(t.clone().swap_dims(0, 1).into_data(), (&Device::flex(), t.dtype()));
        Param::initialized(p.id, transposed.swap_dims(0, 1))
    }
}
