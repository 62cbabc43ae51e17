//! Attention's `softmax(scores · scale + bias)` in one pass per row on the host, for inference.
//! From tensor ops it is seven passes over `[B, heads, T, S]` (scale, bias, max, shift, exp,
//! sum, divide), its `exp` libm's scalar `expf`. Autodiff needs the tensor ops for its
//! backward, so tracked tensors keep them: see [`super::on_host`].

use burn::tensor::{Tensor, TensorData};

use crate::vmath;

/// Rows per rayon task.
const ROWS: usize = 32;

/// `scores: [B, H, T, S]`, `bias: [B, 1 or H, T, S]` (the mask, ALiBi's per-head term added).
pub fn softmax(scores: Tensor<4>, scale: f32, bias: &Tensor<4>) -> Tensor<4> {
    let (dims, device) = (scores.dims(), scores.device());
    let [_, heads, t, s] = dims;
    let bias_heads = bias.dims()[1];
    assert!(bias.dims() == [dims[0], bias_heads, t, s] && (bias_heads == 1 || bias_heads == heads), "bias {:?} for scores {dims:?}", bias.dims());
    let bias: Vec<f32> = bias.clone().into_data().try_into_vec().expect("the bias is f32");
    let mut data: Vec<f32> = scores.into_data().try_into_vec().expect("scores are f32");
    super::for_chunks(&mut data, ROWS * s, |task, rows| {
        for (i, row) in rows.chunks_exact_mut(s).enumerate() {
            // Row r is (b, h, q); its bias row is (b, h or 0, q).
            let r = task * ROWS + i;
            let (b, h, q) = (r / (heads * t), r / t % heads, r % t);
            let bias_row = ((b * bias_heads + if bias_heads == 1 { 0 } else { h }) * t + q) * s;
            normalise(row, &bias[bias_row..][..s], scale);
        }
    });
    Tensor::from_data(TensorData::new(data, dims), &device)
}

/// One row, on the AVX2/FMA build where the CPU has it.
fn normalise(row: &mut [f32], bias: &[f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if vmath::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { normalise_avx2(row, bias, scale) };
    }
    normalise_row(row, bias, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn normalise_avx2(row: &mut [f32], bias: &[f32], scale: f32) {
    normalise_row(row, bias, scale)
}

#[inline(always)]
fn normalise_row(row: &mut [f32], bias: &[f32], scale: f32) {
    // The same two roundings as `mul_scalar` then `add`.
    row.iter_mut().zip(bias).for_each(|(x, &b)| *x = *x * scale + b);
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    // Masked keys (f32::MIN, far below exp's range) give exactly 0, as libm's expf does, and
    // so do probabilities below the normal range: subnormal weights would slow the product
    // with the values several-fold (x86's subnormal arithmetic).
    row.iter_mut().for_each(|x| {
        let d = *x - max;
        *x = if d < -87.0 { 0.0 } else { vmath::exp(d) };
    });
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &x)| *a += x);
    }
    let sum = acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    row.iter_mut().for_each(|x| {
        let p = *x / sum;
        *x = if p < f32::MIN_POSITIVE { 0.0 } else { p };
    });
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    /// Against burn's softmax of the scaled, biased scores, with a causal mask of f32::MIN (as
    /// the model's) and with a per-head bias (ALiBi's shape), over more rows than one task.
    #[test]
    fn fused_softmax_matches_the_tensor_ops() {
        let (b, h, t, s) = (2, 3, 40, 45);
        let dev = Device::flex();
        let scores: Vec<f32> = (0..b * h * t * s).map(|i| ((i * 7919 % 4001) as f32 / 4001.0 - 0.5) * 30.0).collect();
        let scores = Tensor::<4>::from_data(TensorData::new(scores, [b, h, t, s]), &dev);
        let causal: Vec<f32> = (0..b * t * s).map(|i| if i % s <= (i / s) % t + 5 { 0.0 } else { f32::MIN }).collect();
        let causal = Tensor::<4>::from_data(TensorData::new(causal, [b, 1, t, s]), &dev);
        let per_head: Vec<f32> = (0..b * h * t * s).map(|i| -((i % s) as f32) * 0.1 * (1 + i / (t * s) % h) as f32).collect();
        let per_head = Tensor::<4>::from_data(TensorData::new(per_head, [b, h, t, s]), &dev);
        for (bias, masked) in [(causal, true), (per_head, false)] {
            let got: Vec<f32> = super::softmax(scores.clone(), 0.125, &bias).into_data().try_into_vec().unwrap();
            let reference = burn::tensor::activation::softmax(scores.clone().mul_scalar(0.125).add(bias), 3);
            let want: Vec<f32> = reference.into_data().try_into_vec().unwrap();
            for i in 0..got.len() {
                assert!((got[i] - want[i]).abs() <= 1e-6 * want[i].abs() + 1e-37, "at {i}: {} vs {}", got[i], want[i]);
                // No subnormal weights: they slow the product with the values several-fold.
                assert!(got[i] == 0.0 || got[i] >= f32::MIN_POSITIVE, "subnormal at {i}: {}", got[i]);
            }
            if masked {
                let zeros = got.iter().zip(&want).filter(|&(&g, &w)| w == 0.0 && g == 0.0).count();
                assert_eq!(zeros, want.iter().filter(|&&w| w == 0.0).count(), "masked keys weigh exactly 0");
                assert!(zeros > got.len() / 10, "the mask masks");
            }
        }
    }
}
