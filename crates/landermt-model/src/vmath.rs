//! Elementary functions written so that loops over slices vectorise (AVX2/FMA inside a
//! `#[target_feature]` caller), in place of libm's scalar calls: one pass over a
//! vocabulary-wide row or an FFN activation is bound by `expf` otherwise.

/// Whether this CPU runs the AVX2/FMA builds of our hand-vectorised loops (detected once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// `eˣ` to about 2 ulp for x in [−87.3, 88] (Cephes' `expf`: x = n·ln 2 + r, a degree-7
/// polynomial in r, 2ⁿ put into the exponent bits); below that range the result is the
/// smallest normal float instead of 0, which a softmax sum cannot tell apart. Branch-free and
/// with wrapping integer ops, so that the loops around it vectorise in the dev profile too.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.0);
    let shifted = x.mul_add(LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = 1.987_569_1e-4_f32;
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.500_000_01] {
        p = p.mul_add(r, c);
    }
    let p = p.mul_add(r * r, r) + 1.0;
    // n sits in the low bits of `shifted`'s mantissa, offset by 0x4B40_0000.
    let n_bits = shifted.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127);
    p * f32::from_bits(n_bits << 23)
}

/// `1 / (1 + e⁻ˣ)`, saturating cleanly at both ends through [`exp`]'s clamp.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64_exp() {
        let mut worst = 0f64;
        for i in -873_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = (x as f64).exp();
            let ulp = (want as f32).to_bits().abs_diff(exp(x).to_bits());
            worst = worst.max(ulp as f64);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn sigmoid_matches_f64_and_saturates() {
        for i in -1700..=2000 {
            let x = i as f32 * 0.05;
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - want).abs() <= 5e-7 * want, "x = {x}");
        }
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
    }
}
