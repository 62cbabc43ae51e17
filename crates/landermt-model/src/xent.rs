//! Softmax cross-entropy over vocabulary rows in one fused pass on the host: the loss and the
//! gradient at the logits, w·(softmax − onehot), written over the logits in place.
//!
//! Built from tensor ops, the same computation takes eight passes over `[N, V]` (max, subtract,
//! exp, sum, scale, scatter, …), several into fresh half-gigabyte buffers for Gemma's 262k
//! vocabulary, with a scalar libm `expf` per element. Here each row is read three times while
//! it sits in cache, with [`crate::vmath::exp`], which the compiler vectorises.

use rayon::prelude::*;

/// Width of the independent accumulators: enough lanes for the compiler to keep a vector of
/// partial maxima and sums instead of one serial chain.
const LANES: usize = 16;

/// Replaces each row of `logits` (`[targets.len(), v]`, row-major) by `w·(softmax − onehot)`
/// and returns −Σ_i w_i · log softmax(row_i)[target_i], accumulated in f64.
///
/// Panics if `logits.len() != targets.len() * v`, `weights.len() != targets.len()` or a target
/// is not below `v` (callers build all three from one batch).
pub fn softmax_xent_in_place(logits: &mut [f32], v: usize, targets: &[i64], weights: &[f32]) -> f64 {
    assert_eq!(logits.len(), targets.len() * v, "logits are [rows, vocabulary]");
    assert_eq!(weights.len(), targets.len(), "one weight per row");
    let rows: Vec<f64> = logits
        .par_chunks_mut(v)
        .zip(targets.par_iter().zip(weights.par_iter()))
        .map(|(row, (&t, &w))| {
            let t = usize::try_from(t).ok().filter(|&t| t < v).expect("target id inside the vocabulary");
            row_in_place(row, t, w)
        })
        .collect();
    // Summed in row order, not by rayon's `sum`: its split follows work stealing, so the last
    // bit of the loss would change from run to run (and a resumed run's artifacts with it).
    rows.iter().sum()
}

/// One row: returns −w·log p(t) and leaves w·(p − onehot(t)) in `row`.
fn row_in_place(row: &mut [f32], t: usize, w: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { row_avx2(row, t, w) };
    }
    row_portable(row, t, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(row: &mut [f32], t: usize, w: f32) -> f64 {
    row_portable(row, t, w)
}

#[inline(always)]
fn row_portable(row: &mut [f32], t: usize, w: f32) -> f64 {
    let x_t = row[t];
    let max = row_max(row);
    let sum = exp_shifted_in_place(row, max);
    let scale = w / sum;
    row.iter_mut().for_each(|x| *x *= scale);
    row[t] -= w;
    let log_p = f64::from(x_t) - f64::from(max) - f64::from(sum).ln();
    -f64::from(w) * log_p
}

#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        acc.iter_mut().zip(c).for_each(|(a, &x)| *a = a.max(x));
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}

/// `x ← exp(x − max)` for every element; returns the sum of the new values.
#[inline(always)]
fn exp_shifted_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, x)| {
            *x = crate::vmath::exp(*x - max);
            *a += *x;
        });
    }
    let tail: f32 = chunks
        .into_remainder()
        .iter_mut()
        .map(|x| {
            *x = crate::vmath::exp(*x - max);
            *x
        })
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss is the rows' losses added in row order, to the bit, whatever way rayon splits
    /// the rows: a resumed run must write the same artifacts as an uninterrupted one.
    #[test]
    fn the_loss_is_the_row_losses_summed_in_order_to_the_bit() {
        let (rows, v) = (257, 64);
        let logits: Vec<f32> = (0..rows * v).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 40.0).collect();
        let targets: Vec<i64> = (0..rows as i64).map(|r| r * 13 % v as i64).collect();
        let weights: Vec<f32> = (0..rows).map(|r| 1.0 / (1 + r % 7) as f32).collect();
        let mut want = 0f64;
        for r in 0..rows {
            let mut row = logits[r * v..(r + 1) * v].to_vec();
            want += softmax_xent_in_place(&mut row, v, &targets[r..=r], &weights[r..=r]);
        }
        for _ in 0..20 {
            let loss = softmax_xent_in_place(&mut logits.clone(), v, &targets, &weights);
            assert_eq!(loss.to_bits(), want.to_bits(), "{loss} vs {want}");
        }
    }

    /// The loss and gradient against the textbook formulas in f64, on rows longer than the
    /// lanes (a tail) and with a target at each end.
    #[test]
    fn rows_match_softmax_cross_entropy_in_f64() {
        let v = 1000 + 7;
        let logits: Vec<f32> = (0..3 * v).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 30.0).collect();
        let (targets, weights) = ([0i64, 500, v as i64 - 1], [0.25f32, 1.0, 0.0]);
        let mut grad = logits.clone();
        let loss = softmax_xent_in_place(&mut grad, v, &targets, &weights);
        let mut want_loss = 0f64;
        for r in 0..3 {
            let row: Vec<f64> = logits[r * v..(r + 1) * v].iter().map(|&x| x as f64).collect();
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
            let t = targets[r] as usize;
            want_loss -= weights[r] as f64 * (row[t] - max - sum.ln());
            for (j, x) in row.iter().enumerate() {
                let want = weights[r] as f64 * ((x - max).exp() / sum - if j == t { 1.0 } else { 0.0 });
                let got = grad[r * v + j] as f64;
                assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "row {r}, unit {j}: {got} vs {want}");
            }
        }
        assert!((loss - want_loss).abs() <= 1e-5 * want_loss.abs(), "{loss} vs {want_loss}");
    }
}
