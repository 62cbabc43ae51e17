//! The random control (`score.method = "random"`): in every selected layer and module, units
//! drawn with a seed in the numbers Taylor's split gave: first the general units, then each
//! language's specific units, disjoint, all from one seeded shuffle of the module's units. It
//! answers "would any units of that size, in those layers, do as well?".

use landermt_data::mix;

use crate::artifact::{ModuleSplit, Neurons};

/// `neurons` with every split's units replaced by random ones of the same counts; the
/// variance threshold and everything else are kept.
pub fn randomized(neurons: &Neurons, seed: u64) -> Neurons {
    let mut out = Neurons { random_seed: Some(seed), ..neurons.clone() };
    for layer in &mut out.layers {
        for (name, split) in layer.modules.iter_mut() {
            *split = redraw(split, seed ^ mix(layer.layer as u64) ^ mix(hash(name)));
        }
    }
    out
}

fn redraw(split: &ModuleSplit, seed: u64) -> ModuleSplit {
    let mut order: Vec<usize> = (0..split.units).collect();
    // Fisher–Yates with SplitMix64: reproducible from the seed alone.
    let mut state = seed;
    for i in (1..order.len()).rev() {
        state = mix(state);
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut next = order.into_iter();
    let mut take = |n: usize| {
        let mut units: Vec<usize> = next.by_ref().take(n).collect();
        units.sort_unstable();
        units
    };
    let general = take(split.general.len());
    let specific = split.specific.iter().map(|(lang, units)| (lang.clone(), take(units.len()))).collect();
    ModuleSplit { general, specific, ..split.clone() }
}

/// FNV-1a of a module name.
fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::artifact::LayerSplit;

    fn neurons() -> Neurons {
        let split = |g: Vec<usize>, en: Vec<usize>, fr: Vec<usize>| {
            let specific: BTreeMap<String, Vec<usize>> = [("en".to_string(), en), ("fr".to_string(), fr)].into();
            let mut counts: BTreeMap<String, usize> = specific.iter().map(|(l, u)| (l.clone(), u.len())).collect();
            counts.insert("general".into(), g.len());
            ModuleSplit { units: 40, lambda: 0.5, general: g, specific, counts }
        };
        let layer = |l| LayerSplit {
            layer: l,
            modules: [("ffn_act".to_string(), split((0..20).collect(), vec![20, 21, 22], vec![30])), ("q".to_string(), split((0..10).collect(), vec![], vec![11, 12]))].into(),
        };
        Neurons {
            version: crate::NEURONS_VERSION,
            model: "m".into(),
            epsilon: 0.9,
            languages: vec!["en".parse().unwrap(), "fr".parse().unwrap()],
            data: landermt_data::MonoSource::Flores { dir: "d".into(), first: 1, last: 2 },
            counts: Vec::new(),
            num_layers: 4,
            selected: vec![1, 2],
            layers: vec![layer(1), layer(2)],
            random_seed: None,
            lape: None,
        }
    }

    #[test]
    fn random_units_keep_every_count_are_disjoint_and_follow_the_seed() {
        let n = neurons();
        let (a, b, c) = (randomized(&n, 7), randomized(&n, 7), randomized(&n, 8));
        assert_eq!(a, b, "the same seed draws the same units");
        assert_ne!(a, c, "another seed draws others");
        for (orig, rand) in n.layers.iter().zip(&a.layers) {
            for (name, s) in &orig.modules {
                let r = &rand.modules[name];
                assert_eq!(r.general.len(), s.general.len());
                assert_eq!(r.counts, s.counts);
                let mut all: Vec<usize> = r.general.clone();
                for (lang, units) in &s.specific {
                    assert_eq!(r.specific[lang].len(), units.len(), "{name} {lang}");
                    all.extend(&r.specific[lang]);
                }
                let total = all.len();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), total, "{name}: the draws overlap");
                assert!(all.iter().all(|&u| u < s.units));
                assert!(r.general.windows(2).all(|w| w[0] < w[1]), "sorted");
            }
        }
        // The two layers draw differently (the seed mixes the layer in).
        assert_ne!(a.layers[0].modules["ffn_act"].general, a.layers[1].modules["ffn_act"].general);
        assert_ne!(a.layers[0].modules["ffn_act"].general, n.layers[0].modules["ffn_act"].general);
    }
}
