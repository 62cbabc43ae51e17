//! Seeds (`[eval] seeds`): a method trained with several seeds, its BLEU mean and spread per
//! direction, and the claims between two seeded methods that hold on every seed. A claim "A
//! beats B" on a direction holds only when A − B has the same sign on every seed (paired by
//! seed: the i-th seed of each) and the paired bootstrap on the pooled hypotheses (every seed's
//! lines one after the other, against the references repeated) gives p < 0.05.

use itertools::Itertools;
use serde::{Deserialize, Serialize};

/// One method on one direction and test set, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub method: String,
    pub direction: String,
    pub test_set: String,
    pub seeds: Vec<u64>,
    pub bleu: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one seed.
    pub sd: f64,
}

/// Two seeded methods on one direction and test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedClaim {
    pub system: String,
    pub against: String,
    pub direction: String,
    pub test_set: String,
    /// `system − against` per seed, in seed order.
    pub deltas: Vec<f64>,
    /// Paired bootstrap p on the pooled hypotheses (seed 12345).
    pub pooled_p: f64,
    /// Same sign on every seed and `pooled_p` < 0.05.
    pub holds: bool,
}

/// A seeded method's systems on one test set: (seed, hypotheses), in seed order.
pub struct Seeded<'a> {
    pub method: String,
    pub runs: Vec<(u64, &'a [String])>,
}

/// The summaries of every seeded method, and the claims between every two of them, on one
/// test set of `direction` with `references`.
pub fn summarise(direction: landermt_data::Direction, test_set: &str, references: &[String], methods: &[Seeded], n_bootstrap: usize) -> (Vec<SeedSummary>, Vec<SeedClaim>) {
    let bleu = landermt_eval::Bleu::for_target(direction.tgt.code);
    let score = |hyps: &[String]| bleu.score_stats(&landermt_eval::bleu::sum(&bleu.all_stats(hyps, references))).score;
    let summaries: Vec<SeedSummary> = methods
        .iter()
        .map(|m| {
            let scores: Vec<f64> = m.runs.iter().map(|(_, h)| score(h)).collect();
            let (mean, sd) = mean_sd(&scores);
            SeedSummary { method: m.method.clone(), direction: direction.to_string(), test_set: test_set.into(), seeds: m.runs.iter().map(|r| r.0).collect(), bleu: scores, mean, sd }
        })
        .collect();
    let mut claims = Vec::new();
    for [(a, sa), (b, sb)] in methods.iter().zip(&summaries).array_combinations() {
        let k = a.runs.len().min(b.runs.len());
        let deltas: Vec<f64> = (0..k).map(|i| sa.bleu[i] - sb.bleu[i]).collect();
        let pooled = |runs: &[(u64, &[String])]| runs[..k].iter().flat_map(|(_, h)| h.iter().cloned()).collect::<Vec<String>>();
        let refs: Vec<String> = (0..k).flat_map(|_| references.iter().cloned()).collect();
        let (_, _, p) = landermt_eval::bootstrap::paired_bleu(&bleu, &refs, &pooled(&b.runs), &pooled(&a.runs), n_bootstrap, 12345);
        let same_sign = deltas.iter().all(|d| *d > 0.0) || deltas.iter().all(|d| *d < 0.0);
        claims.push(SeedClaim {
            system: a.method.clone(),
            against: b.method.clone(),
            direction: direction.to_string(),
            test_set: test_set.into(),
            holds: same_sign && p < 0.05 && k > 0,
            deltas,
            pooled_p: p,
        });
    }
    (summaries, claims)
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n.max(1.0);
    let sd = if x.len() > 1 { landermt_score::split::variance(x).sqrt() } else { 0.0 };
    (mean, sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_claim_needs_the_same_sign_on_every_seed_and_the_pooled_test() {
        let refs = lines(&["the cat sat on the mat", "a dog barks at night", "it rains in spring", "we eat bread daily"]);
        let good = refs.clone();
        let bad = lines(&["cat", "dog", "rain", "bread"]);
        let d: landermt_data::Direction = "fr-en".parse().unwrap();
        // A is perfect on every seed, B poor on every seed: the claim holds.
        let a = Seeded { method: "a".into(), runs: vec![(1, &good[..]), (2, &good[..]), (3, &good[..])] };
        let b = Seeded { method: "b".into(), runs: vec![(1, &bad[..]), (2, &bad[..]), (3, &bad[..])] };
        let (s, c) = summarise(d, "t", &refs, &[a, b], 200);
        assert!((s[0].mean - 100.0).abs() < 1e-9 && s[0].sd < 1e-9, "{:?}", s[0]);
        assert!(c[0].deltas.iter().all(|x| *x > 50.0) && c[0].pooled_p < 0.05 && c[0].holds, "{:?}", c[0]);
        // B's second seed beats A's: one sign differs, so no claim, whatever the pooled test says.
        let a = Seeded { method: "a".into(), runs: vec![(1, &good[..]), (2, &bad[..]), (3, &good[..])] };
        let b = Seeded { method: "b".into(), runs: vec![(1, &bad[..]), (2, &good[..]), (3, &bad[..])] };
        let (s, c) = summarise(d, "t", &refs, &[a, b], 200);
        assert!(c[0].deltas[1] < 0.0 && c[0].deltas[0] > 0.0 && !c[0].holds);
        // numpy: np.std([100, x, 100], ddof=1) for the BLEU x of the poor lines.
        let x = s[0].bleu[1];
        let mean = (200.0 + x) / 3.0;
        let sd = (((100.0 - mean).powi(2) * 2.0 + (x - mean).powi(2)) / 2.0).sqrt();
        assert!((s[0].mean - mean).abs() < 1e-9 && (s[0].sd - sd).abs() < 1e-9);
    }
}
