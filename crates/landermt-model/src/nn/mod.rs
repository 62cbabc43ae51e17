//! The pieces every architecture shares: norms, positions (RoPE, ALiBi), attention with a KV
//! cache, the FFN, and the block that composes them.

pub mod adapter;
pub mod alibi;
pub mod attention;
pub mod block;
pub mod decode_layout;
pub mod fused_act;
pub mod fused_norm;
pub mod fused_softmax;
pub mod mlp;
pub mod norm;
pub mod rope;
pub mod router;

pub use adapter::Adapter;
pub use attention::Attention;
pub use block::Block;
pub use mlp::Mlp;
pub use norm::Norm;
pub use router::{CarMode, Partition, Router, RouterMasks, Start};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use crate::WeightDtype;
use crate::weights::HostTensor;

/// Whether a one-pass host op (`fused_act`, `fused_norm`, `fused_softmax`, `rope::apply`) may
/// replace the tensor ops for `x`: a flex tensor outside autodiff, whose backward needs the
/// tensor ops.
pub fn on_host<const D: usize>(x: &Tensor<D>) -> bool {
    !x.is_autodiff() && x.device() == Device::flex()
}

/// `f(i, chunk)` over `data` cut into chunks of `len` elements, on rayon's threads where there
/// is more than one chunk. One chunk runs on this thread: handing it to the pool costs a
/// wake-up, which a decoding step's small tensors would pay several times per layer.
pub(crate) fn for_chunks(data: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    use rayon::prelude::*;
    if data.len() <= len {
        f(0, data);
    } else {
        data.par_chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}

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
    let data = match dtype {
        WeightDtype::F32 => TensorData::new(t.data, [r, c]),
        WeightDtype::Bf16 => TensorData::new(bf16_shrinking(t.data), [r, c]),
    };
    Tensor::from_data(data, (device, dtype.burn()))
}

/// `values` rounded to bf16, converted from the back in chunks while the f32 vector shrinks
/// behind them: the result's pages are touched only as they are written (it is allocated
/// uninitialised: a zeroed `vec!` was written whole by the allocator, 336 MB at once for
/// Gemma's embedding), and the source's tail is freed, so the resident memory stays near one
/// f32 copy instead of one and a half. Gemma's 262k × 640 embedding set the whole load's peak.
fn bf16_shrinking(mut values: Vec<f32>) -> Vec<half::bf16> {
    use half::vec::HalfBitsVecExt;
    const CHUNK: usize = 1 << 22;
    let n = values.len();
    let mut bits: Vec<u16> = Vec::with_capacity(n);
    let spare = &mut bits.spare_capacity_mut()[..n];
    while !values.is_empty() {
        let start = values.len().saturating_sub(CHUNK);
        for (b, &v) in spare[start..values.len()].iter_mut().zip(&values[start..]) {
            b.write(half::bf16::from_f32(v).to_bits());
        }
        values.truncate(start);
        values.shrink_to_fit();
    }
    // SAFETY: every one of the n elements was written above (the chunks cover 0..n).
    unsafe { bits.set_len(n) };
    bits.reinterpret_into()
}

/// A linear layer from a Hugging Face `[out, in]` weight (transposed into Burn's `[in, out]`).
/// The weight is stored in `dtype`, the bias in f32.
pub(crate) fn linear(weight: HostTensor, bias: Option<HostTensor>, dtype: WeightDtype, device: &Device) -> Linear {
    Linear { weight: Param::from_tensor(tensor2(weight.transposed(), dtype, device)), bias: bias.map(|b| Param::from_tensor(tensor1(b, device))) }
}
