//! The FFN's activation, times its gate product where it has one, in one pass on the host, for
//! inference. Built from tensor ops, GELU-tanh takes six passes over `[B, T, F]` (square,
//! scale, shift, multiply, sigmoid, multiply) plus the gate's, and flex runs its sigmoid on
//! one thread with libm's scalar `expf`. Autodiff needs those ops for its backward, so tracked
//! tensors (any on an autodiff device) keep them: see [`super::on_host`].

use burn::tensor::{Tensor, TensorData};

use crate::config::Activation;
use crate::vmath::sigmoid;

/// Elements per rayon task: large enough to amortise the split, small enough to balance.
const CHUNK: usize = 1 << 14;

/// `act(a) · up` (`act(a)` for an ungated FFN), computed in `a`'s buffer when `a` owns it.
pub fn gated(activation: Activation, a: Tensor<3>, up: Option<Tensor<3>>) -> Tensor<3> {
    let (dims, device) = (a.dims(), a.device());
    let mut data: Vec<f32> = a.into_data().try_into_vec().expect("activations are f32");
    let up = up.map(|u| u.into_data());
    let up = up.as_ref().map(|u| u.as_slice::<f32>().expect("activations are f32"));
    // Each arm passes the function itself (not a pointer), so it inlines into the vector loop.
    match activation {
        Activation::GeluTanh | Activation::GeGluTanh => in_chunks(&mut data, up, gelu_tanh),
        Activation::SwiGlu => in_chunks(&mut data, up, silu),
    }
    Tensor::from_data(TensorData::new(data, dims), &device)
}

/// [`chunk`] over `data` (and `up`) split into rayon tasks.
fn in_chunks(data: &mut [f32], up: Option<&[f32]>, f: impl Fn(f32) -> f32 + Copy + Send + Sync) {
    super::for_chunks(data, CHUNK, |i, a| chunk(a, up.map(|u| &u[i * CHUNK..][..a.len()]), f));
}

/// `a ← f(a)·up` (`f(a)` without `up`), on the AVX2/FMA build where the CPU has it.
fn chunk(a: &mut [f32], up: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { apply_avx2(a, up, f) };
    }
    apply(a, up, f);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2(a: &mut [f32], up: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    apply(a, up, f)
}

#[inline(always)]
fn apply(a: &mut [f32], up: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    match up {
        Some(up) => a.iter_mut().zip(up).for_each(|(x, &u)| *x = f(*x) * u),
        None => a.iter_mut().for_each(|x| *x = f(*x)),
    }
}

/// `x·σ(2·√(2/π)·x·(1 + 0.044715·x²))`, the tanh GELU (see `mlp::gelu_tanh`).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 1.595_769_1; // 2·√(2/π)
    x * sigmoid(C * x * (0.044_715 * x).mul_add(x, 1.0))
}

/// `x·σ(x)`.
#[inline(always)]
fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::config::Activation;

    /// Against the tensor-op activations (libm's `expf`), gated and not, on a tensor longer
    /// than one chunk.
    #[test]
    fn fused_activations_match_the_tensor_ops() {
        let n = 3 * super::CHUNK + 5;
        let xs: Vec<f32> = (0..n).map(|i| ((i * 7919 % 4001) as f32 / 4001.0 - 0.5) * 24.0).collect();
        let us: Vec<f32> = (0..n).map(|i| ((i * 104_729 % 997) as f32 / 997.0 - 0.5) * 4.0).collect();
        let t = |v: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(v.clone(), [1, 1, n]), &Device::flex());
        let cases: [(Activation, fn(Tensor<3>) -> Tensor<3>); 2] = [(Activation::GeGluTanh, super::super::mlp::gelu_tanh), (Activation::SwiGlu, burn::tensor::activation::silu)];
        for (act, reference) in cases {
            assert!(super::super::on_host(&t(&xs)));
            let got: Vec<f32> = super::gated(act, t(&xs), Some(t(&us))).into_data().try_into_vec().unwrap();
            let want: Vec<f32> = reference(t(&xs)).mul(t(&us)).into_data().try_into_vec().unwrap();
            let alone: Vec<f32> = super::gated(act, t(&xs), None).into_data().try_into_vec().unwrap();
            let want_alone: Vec<f32> = reference(t(&xs)).into_data().try_into_vec().unwrap();
            for i in 0..n {
                assert!((got[i] - want[i]).abs() <= 1e-6 * (1.0 + want[i].abs()), "{act:?} at {i}: {} vs {}", got[i], want[i]);
                assert!((alone[i] - want_alone[i]).abs() <= 1e-6 * (1.0 + want_alone[i].abs()), "{act:?} alone at {i}");
            }
        }
    }
}
