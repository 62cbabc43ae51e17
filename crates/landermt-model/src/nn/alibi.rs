//! ALiBi (BLOOM): a per-head bias `slope_h · position(key)` added to attention scores. Adding a
//! per-query constant does not change a softmax, so absolute key positions give the same
//! result as relative distances, as in transformers' `build_alibi_tensor`.

use burn::tensor::{Device, Tensor, TensorData};

/// The head slopes, computed in f32 as transformers does; head counts that are not a power of
/// two take the odd powers of the next power's base for the remaining heads.
pub fn slopes(num_heads: usize) -> Vec<f32> {
    let closest = 1usize << num_heads.ilog2();
    let base = |n: usize| 2f32.powf(-(2f32.powf(-((n as f32).log2() - 3.0))));
    let b = base(closest);
    let mut s: Vec<f32> = (1..=closest).map(|p| b.powi(p as i32)).collect();
    if closest != num_heads {
        let extra = base(2 * closest);
        let remaining = (num_heads - closest).min(closest);
        s.extend((0..remaining).map(|i| extra.powi((1 + 2 * i) as i32)));
    }
    s
}

/// The bias `[B, heads, 1, Tk]` for keys at `key_positions` (`[B][Tk]`).
pub fn bias(num_heads: usize, key_positions: &[Vec<i64>], device: &Device) -> Tensor<4> {
    let s = slopes(num_heads);
    let (b, tk) = (key_positions.len(), key_positions[0].len());
    let mut data = Vec::with_capacity(b * num_heads * tk);
    for row in key_positions {
        for &slope in &s {
            data.extend(row.iter().map(|&p| slope * p as f32));
        }
    }
    Tensor::from_data(TensorData::new(data, [b, num_heads, 1, tk]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_match_the_alibi_paper_for_powers_of_two_and_others() {
        // 8 heads: 2^-1 .. 2^-8 (Press et al.).
        let s8 = slopes(8);
        for (i, s) in s8.iter().enumerate() {
            assert!((s - 2f32.powi(-(i as i32 + 1))).abs() < 1e-7, "{s8:?}");
        }
        // 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then odd powers of 2^-1: 2^-1, 2^-3.
        let s6 = slopes(6);
        let want = [2f32.powi(-2), 2f32.powi(-4), 2f32.powi(-6), 2f32.powi(-8), 0.5, 0.125];
        for (a, b) in s6.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{s6:?}");
        }
    }
}
