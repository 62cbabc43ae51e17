//! The general/specific split of one module's units (METHOD.md eq. 3): the unbiased variance
//! of each unit's awareness across languages, the threshold λ at the ε-quantile, and the
//! language of each specific unit.

/// The split of one module's `p` units.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `σ_i`: unbiased variance of `(S_ℓ[i])_ℓ` across languages.
    pub var: Vec<f64>,
    /// `λ = sort(σ)[⌊ε·p⌋]` (index clamped to p − 1).
    pub lambda: f64,
    /// Units with `σ ≤ λ`, ascending.
    pub general: Vec<usize>,
    /// Per language (in the order of the input), the units with `σ > λ` whose largest
    /// awareness is in that language (ties go to the earlier language), ascending.
    pub specific: Vec<Vec<usize>>,
}

/// Unbiased (n − 1) variance; needs at least two values.
pub fn variance(values: &[f64]) -> f64 {
    assert!(values.len() >= 2, "the variance across languages needs two languages");
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

/// Splits the units of one module given `s[ℓ][i]`, the awareness of unit i in language ℓ.
///
/// Rounding: λ is the `⌊ε·p⌋`-th smallest variance (0-based), and only variances strictly
/// above it are specific, so with distinct variances exactly `p − ⌊ε·p⌋ − 1` units are
/// specific: `⌊(1 − ε)·p⌋` when `ε·p` is not an integer, one fewer when it is (as in the
/// reference code).
pub fn split(s: &[Vec<f64>], epsilon: f64) -> Split {
    assert!(s.len() >= 2, "the split needs two languages");
    assert!((0.0..=1.0).contains(&epsilon), "ε must lie in [0, 1]");
    let p = s[0].len();
    let var: Vec<f64> = (0..p).map(|i| variance(&s.iter().map(|lang| lang[i]).collect::<Vec<_>>())).collect();
    let mut sorted = var.clone();
    sorted.sort_by(f64::total_cmp);
    let lambda = sorted.get(((epsilon * p as f64).floor() as usize).min(p.saturating_sub(1))).copied().unwrap_or(0.0);
    let mut general = Vec::new();
    let mut specific = vec![Vec::new(); s.len()];
    for (i, &v) in var.iter().enumerate() {
        if v > lambda {
            // The first of the largest: `max_by` would return the last.
            let owner = (0..s.len()).fold(0, |best, l| if s[l][i] > s[best][i] { l } else { best });
            specific[owner].push(i);
        } else {
            general.push(i);
        }
    }
    Split { var, lambda, general, specific }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_is_unbiased() {
        assert_eq!(variance(&[1.0, 3.0]), 2.0);
        assert!((variance(&[1.0, 2.0, 4.0]) - 7.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn top_tenth_of_the_variance_is_specific() {
        // 25 units; unit i is larger by i in en (even i) or in fr (odd i), so σ_i = i²/2.
        let en: Vec<f64> = (0..25).map(|i| if i % 2 == 0 { 10.0 + i as f64 } else { 10.0 }).collect();
        let fr: Vec<f64> = (0..25).map(|i| if i % 2 == 1 { 10.0 + i as f64 } else { 10.0 }).collect();
        let sp = split(&[en, fr], 0.9);
        // ⌊0.9·25⌋ = 22: λ = σ_22, so units 23 and 24 (= ⌊0.1·25⌋ = 2) are specific.
        assert_eq!(sp.lambda, sp.var[22]);
        assert_eq!(sp.general, (0..23).collect::<Vec<_>>());
        // Unit 23 (odd) is larger in fr, unit 24 (even) in en.
        assert_eq!(sp.specific, vec![vec![24], vec![23]]);
    }

    #[test]
    fn specific_count_follows_the_documented_rounding() {
        for (p, epsilon, want) in [(2048, 0.9, 204), (640, 0.9, 63), (10, 0.9, 0), (10, 0.75, 2), (7, 0.0, 6), (7, 1.0, 0)] {
            let a: Vec<f64> = (0..p).map(|i| i as f64).collect();
            let b = vec![0.0; p];
            let sp = split(&[a, b], epsilon);
            let n: usize = sp.specific.iter().map(Vec::len).sum();
            assert_eq!(n, want, "p {p}, ε {epsilon}");
            assert_eq!(n, p - ((epsilon * p as f64).floor() as usize).min(p - 1) - 1);
            assert_eq!(sp.general.len() + n, p);
        }
    }

    #[test]
    fn ties_in_awareness_go_to_the_earlier_language() {
        // ε = 0: λ is the smallest σ (unit 0, constant). Unit 1 varies (0, 4, 4): fr and de tie
        // at the maximum, and fr comes first.
        let sp = split(&[vec![1.0, 0.0], vec![1.0, 4.0], vec![1.0, 4.0]], 0.0);
        assert_eq!(sp.specific, vec![vec![], vec![1], vec![]]);
        assert_eq!(sp.general, vec![0]);
    }
}
