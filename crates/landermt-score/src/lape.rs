//! LAPE, language activation probability entropy (Tang et al., ACL 2024; reference code
//! RUCAIBox/Language-Specific-Neurons, `activation.py` and `identify.py`): language-specific FFN
//! units from activation statistics alone, no gradients.
//!
//! - p_{ℓ,l,j}: the share of language ℓ's tokens on which unit j of block l's FFN activation is
//!   positive (`act(gate·x)` alone for gated FFNs, as the reference hooks it);
//! - p̂ = p normalised over the languages; entropy H = −Σ_ℓ p̂ log p̂ (0·log 0 = 0);
//! - a unit none of whose p exceeds the `filter_rate` quantile of every p (all languages,
//!   layers and units together) is dropped (H = ∞);
//! - the `top_rate` share of all layers' units with the lowest H is kept, ranked together;
//! - each kept unit belongs to every language whose p exceeds the `bar_rate` quantile.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use landermt_data::Language;
use landermt_model::{Batch, LanguageModel, Site, Taps};
use serde::{Deserialize, Serialize};

/// One language's activation counts: tokens seen, and per block and unit the tokens on which
/// the unit's activation was positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub tokens: usize,
    pub positive: Vec<Vec<u64>>,
}

/// `score.lape`: the reference's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LapeSettings {
    /// Share of all units kept, lowest entropy first (the reference: 0.01; its first version 0.05).
    pub top_rate: f64,
    /// Quantile of all p that a unit must exceed in some language to be ranked at all.
    pub filter_rate: f64,
    /// Quantile of all p that assigns a kept unit to a language.
    pub bar_rate: f64,
}

impl Default for LapeSettings {
    fn default() -> Self {
        Self { top_rate: 0.01, filter_rate: 0.95, bar_rate: 0.95 }
    }
}

/// LAPE's result for the run's languages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lape {
    pub languages: Vec<Language>,
    pub settings: LapeSettings,
    /// The `filter_rate` and `bar_rate` quantiles of all p.
    pub filter: f64,
    pub bar: f64,
    /// Units kept (before assignment; a kept unit above no language's bar has no language).
    pub kept: usize,
    /// Per block: each language's units (ascending).
    pub units: Vec<BTreeMap<String, Vec<usize>>>,
}

/// Counts the positive activations of every FFN unit over `sentences` (token ids with the
/// model's special prefix), skipping the first `skip` positions of each (that prefix, the same
/// in every language).
pub fn activity(model: &LanguageModel, sentences: &[Vec<u32>], skip: usize, progress: &dyn Fn(usize)) -> Activity {
    let (layers, units) = (model.config.num_layers, model.config.intermediate_size);
    let mut positive = vec![vec![0u64; units]; layers];
    let mut tokens = 0;
    for ids in sentences {
        let mut taps = Taps::recording([Site::FfnGate]);
        model.net.forward(&Batch::single(ids), None, &mut taps);
        let n = ids.len().saturating_sub(skip);
        for layer in 0..layers {
            let a: Tensor<3> = taps.recorded.remove(&(layer, Site::FfnGate)).expect("every block records its gate");
            let counts: Vec<i64> = a.narrow(1, skip.min(ids.len()), n).greater_elem(0.0).int().sum_dim(1).into_data().convert::<i64>().try_into_vec::<i64>().expect("int counts");
            positive[layer].iter_mut().zip(counts).for_each(|(p, c)| *p += c as u64);
        }
        tokens += n;
        progress(1);
    }
    Activity { tokens, positive }
}

/// The k-th smallest of `values` (1-based, k clamped to 1..=len), as `torch.kthvalue`.
fn kth_smallest(values: &[f64], k: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[k.clamp(1, v.len()) - 1]
}

/// LAPE over `activity` (one per language, in `languages` order).
pub fn select(languages: &[Language], activity: &[Activity], settings: LapeSettings) -> Lape {
    let (layers, units) = (activity[0].positive.len(), activity[0].positive[0].len());
    // p[layer][unit][language]
    let p: Vec<Vec<Vec<f64>>> = (0..layers).map(|l| (0..units).map(|j| activity.iter().map(|a| a.positive[l][j] as f64 / a.tokens.max(1) as f64).collect()).collect()).collect();
    let all: Vec<f64> = p.iter().flatten().flatten().copied().collect();
    // Python's round(): half to even.
    let quantile = |rate: f64| kth_smallest(&all, (all.len() as f64 * rate).round_ties_even() as usize);
    let (filter, bar) = (quantile(settings.filter_rate), quantile(settings.bar_rate));
    let entropy = |ps: &[f64]| -> f64 {
        if !ps.iter().any(|&x| x > filter) {
            return f64::INFINITY;
        }
        let sum: f64 = ps.iter().sum();
        -ps.iter().map(|&x| if sum > 0.0 && x > 0.0 { (x / sum) * (x / sum).ln() } else { 0.0 }).sum::<f64>()
    };
    let mut ranked: Vec<(f64, usize, usize)> = (0..layers).flat_map(|l| (0..units).map(move |j| (l, j))).map(|(l, j)| (entropy(&p[l][j]), l, j)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let kept = ((layers * units) as f64 * settings.top_rate).round_ties_even() as usize;
    let mut out: Vec<BTreeMap<String, Vec<usize>>> = vec![languages.iter().map(|l| (l.code.to_string(), Vec::new())).collect(); layers];
    for &(_, l, j) in &ranked[..kept.min(ranked.len())] {
        for (k, lang) in languages.iter().enumerate() {
            if p[l][j][k] > bar {
                out[l].get_mut(lang.code).expect("every language has an entry").push(j);
            }
        }
    }
    out.iter_mut().flat_map(|m| m.values_mut()).for_each(|u| u.sort_unstable());
    Lape { languages: languages.to_vec(), settings, filter, bar, kept, units: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<Language> {
        ["en", "fr", "de"].iter().map(|c| c.parse().unwrap()).collect()
    }

    /// Two blocks of four units, 100 tokens per language; the table is chosen so that every
    /// step can be worked out by hand.
    #[test]
    fn a_hand_made_activation_table_selects_the_units_worked_out_by_hand() {
        // positive counts per language: [layer][unit]
        let en = vec![vec![90, 10, 50, 0], vec![30, 30, 95, 0]];
        let fr = vec![vec![5, 10, 50, 0], vec![30, 30, 0, 0]];
        let de = vec![vec![5, 10, 50, 0], vec![30, 30, 96, 0]];
        let activity: Vec<Activity> = [en, fr, de].into_iter().map(|positive| Activity { tokens: 100, positive }).collect();
        // 24 p values; sorted: 0×7, .05×2, .10×3, .30×6, .50×3, .90, .95, .96.
        // filter = 23rd smallest (round(24·0.95) = round(22.8) = 23) = 0.95; bar the same.
        // Units with some p > 0.95: only (1, 2) (de 0.96). Its entropy is finite, every other
        // unit's is ∞; top_rate 0.25 keeps round(8·0.25) = 2 units: (1, 2), then the ∞ unit
        // first in (layer, unit) order, (0, 0), whose p are all ≤ 0.95 (no language).
        let s = LapeSettings { top_rate: 0.25, filter_rate: 0.95, bar_rate: 0.95 };
        let lape = select(&langs(), &activity, s);
        assert_eq!((lape.filter, lape.bar, lape.kept), (0.95, 0.95, 2));
        assert_eq!(lape.units[1]["de"], [2]);
        assert!(lape.units[1]["en"].is_empty() && lape.units[1]["fr"].is_empty(), "en's 0.95 is not above the bar");
        assert!(lape.units[0].values().all(Vec::is_empty));
        // A lower filter (rate 0.75: the 18th smallest, 0.30) lets (0, 0), (0, 2), (1, 2) rank:
        // H(0,0) of p̂ (.9, .05, .05)/1.0 ≈ 0.394; H(1,2) of (95, 0, 96)/191 ≈ 0.693;
        // H(0,2) = ln 3 ≈ 1.099. Two kept: (0, 0) and (1, 2); bar 0.30: en 0.90 → en has
        // unit 0 of block 0; en 0.95 and de 0.96 → both have unit 2 of block 1.
        let lape = select(&langs(), &activity, LapeSettings { filter_rate: 0.75, bar_rate: 0.75, ..s });
        assert_eq!(lape.filter, 0.30);
        assert_eq!(lape.units[0]["en"], [0]);
        assert!(lape.units[0]["fr"].is_empty() && lape.units[0]["de"].is_empty());
        assert_eq!((lape.units[1]["en"].clone(), lape.units[1]["de"].clone()), (vec![2], vec![2]));
        assert!(lape.units[1]["fr"].is_empty());
    }
}
