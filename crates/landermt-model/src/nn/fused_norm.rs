//! RMSNorm in one pass on the host, for inference. Built from tensor ops it takes five passes
//! over its input (square, mean, scale, weight, and the `1 + w` broadcast) and as many fresh
//! buffers; Gemma runs six norms per layer (four around the sublayers, one each on q and k).
//! Autodiff needs the tensor ops for its backward, so tracked tensors keep them: see
//! [`super::on_host`].

use burn::tensor::{Tensor, TensorData};

/// Rows per rayon task: a few hundred KiB of a 640-wide model's activations.
const ROWS: usize = 64;

/// `x / √(mean(x²) + eps) · w` over the last dimension, in one pass per row. `weight` is the
/// factor already (`1 + w` for Gemma's norms).
pub fn rms<const D: usize>(x: Tensor<D>, weight: &[f32], eps: f32) -> Tensor<D> {
    let (dims, device) = (x.dims(), x.device());
    let d = dims[D - 1];
    assert_eq!(weight.len(), d, "norm weight of {} for rows of {d}", weight.len());
    let mut data: Vec<f32> = x.into_data().convert::<f32>().try_into_vec().expect("activations are f32");
    super::for_chunks(&mut data, ROWS * d, |_, rows| {
        for row in rows.chunks_exact_mut(d) {
            normalise(row, weight, eps);
        }
    });
    Tensor::from_data(TensorData::new(data, dims), &device)
}

/// One row, on the AVX2/FMA build where the CPU has it.
fn normalise(row: &mut [f32], weight: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { normalise_avx2(row, weight, eps) };
    }
    normalise_row(row, weight, eps);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn normalise_avx2(row: &mut [f32], weight: &[f32], eps: f32) {
    normalise_row(row, weight, eps)
}

#[inline(always)]
fn normalise_row(row: &mut [f32], weight: &[f32], eps: f32) {
    // Eight partial sums, so the loop vectorises (f32 addition is not reassociated for us).
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    let ms = (acc.iter().sum::<f32>() + tail) / row.len() as f32;
    // transformers: x · rsqrt(mean + eps), then the weight.
    let inv = 1.0 / (ms + eps).sqrt();
    row.iter_mut().zip(weight).for_each(|(v, &w)| *v = *v * inv * w);
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::config::NormKind;
    use crate::nn::Norm;

    /// Against the tensor-op norm (each kind with weights, on a strided input, rows of a width
    /// that is not a multiple of 8, more rows than one task), and the f64 formula.
    #[test]
    fn fused_rms_norms_match_the_tensor_ops_and_f64() {
        let (rows, d) = (3 * super::ROWS + 5, 44);
        let n = 2 * rows * d;
        let data: Vec<f32> = (0..n).map(|i| ((i * 7919 % 4001) as f32 / 4001.0 - 0.5) * 6.0).collect();
        let ws: Vec<f32> = (0..d).map(|i| (i as f32 / d as f32 - 0.3) * 2.0).collect();
        let dev = Device::flex();
        // [2, rows, d] viewed as [rows, 2, d]: the input is not contiguous.
        let x = Tensor::<3>::from_data(TensorData::new(data, [2, rows, d]), &dev).swap_dims(0, 1);
        let xs: Vec<f32> = x.clone().into_data().try_into_vec().unwrap();
        for kind in [NormKind::Rms, NormKind::RmsPlusOne] {
            let norm = Norm { weight: burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(ws.clone(), [d]), &dev)), bias: None, kind, eps: 1e-6 };
            let factor: Vec<f32> = ws.iter().map(|w| if kind == NormKind::RmsPlusOne { 1.0 + w } else { *w }).collect();
            let got: Vec<f32> = super::rms(x.clone(), &factor, 1e-6).into_data().try_into_vec().unwrap();
            let want: Vec<f32> = norm.tensor_ops(x.clone()).into_data().try_into_vec().unwrap();
            for r in 0..2 * rows {
                let row = &xs[r * d..(r + 1) * d];
                let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
                for i in 0..d {
                    let exact = row[i] as f64 / (ms + 1e-6).sqrt() * factor[i] as f64;
                    let j = r * d + i;
                    assert!((got[j] - want[j]).abs() <= 2e-6 * (1.0 + want[j].abs()), "{kind:?} at {j}: {} vs {}", got[j], want[j]);
                    assert!((got[j] as f64 - exact).abs() <= 1e-6 * (1.0 + exact.abs()), "{kind:?} at {j} against f64");
                }
            }
        }
    }
}
