//! The pieces every architecture shares: norms, positions (RoPE, ALiBi), attention with a KV
//! cache, the FFN, and the block that composes them.

pub mod adapter;
pub mod alibi;
pub mod attention;
pub mod block;
pub mod fused_act;
pub mod mlp;
pub mod norm;
pub mod rope;
pub mod router;

pub use attention::Attention;
pub use adapter::Adapter;
pub use block::Block;
pub use mlp::Mlp;
pub use norm::Norm;
pub use router::{CarMode, Partition, Router};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use crate::WeightDtype;
use crate::weights::HostTensor;

/// `linear.forward(x)` for `[B, T, d]` as one `[B·T, d]` product. Burn keeps a batched
/// matmul against the broadcast weight when T fills its row tiles, and flex then runs B
/// single-threaded products; one large product is multi-threaded, and goes to OpenBLAS where
/// it is loaded (see `crate::blas`).
pub fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = linear.forward(x.reshape([b * t, d]));
    let out = y.dims()[1];
    y.reshape([b, t, out])
}

pub(crate) fn tensor1(t: HostTensor, device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(t.data, [t.shape.iter().product::<usize>()]), device)
}

/// A matrix stored in `dtype` (converted from the host's f32, rounding to nearest even).
pub(crate) fn tensor2(t: HostTensor, dtype: WeightDtype, device: &Device) -> Tensor<2> {
    let [r, c] = t.shape[..] else { panic!("tensor2 needs a matrix, got {:?}", t.shape) };
    Tensor::from_data(TensorData::new(t.data, [r, c]), (device, dtype.burn()))
}

/// A linear layer from a Hugging Face `[out, in]` weight (transposed into Burn's `[in, out]`).
/// The weight is stored in `dtype`, the bias in f32.
pub(crate) fn linear(weight: HostTensor, bias: Option<HostTensor>, dtype: WeightDtype, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(tensor2(weight.transposed(), dtype, device)),
        bias: bias.map(|b| Param::from_tensor(tensor1(b, device))),
    }
}
