//! LAPE on the tiny LLaMA against an independent implementation of the reference's selection
//! (`bench/lape_reference.py`, identify.py in plain Python): the same quantiles, p within 1e-6
//! and the same units per language and block. The activation counts it reads
//! (`tests/fixtures/lape/activity.json`) are ours, checked here against a fresh count; on BLOOM,
//! where the FFN has no gate, the counted activation is the FFN's intermediate unit itself.

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::{Language, MonoSource, read_monolingual};
use landermt_model::{Batch, LanguageModel, Site, Taps};
use landermt_score::lape::{Activity, LapeSettings, activity, select};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn counts(model: &LanguageModel, languages: &[Language]) -> Vec<Activity> {
    let data = MonoSource::Flores { dir: root().join("data/flores200-devtest"), first: 1, last: 6 };
    let skip = model.encode("").unwrap().len();
    languages.iter().map(|&l| activity(model, &read_monolingual(&data, l).unwrap().iter().map(|s| model.encode(s).unwrap()).collect::<Vec<_>>(), skip, &|_| {})).collect()
}

#[test]
fn lape_selects_what_the_reference_selection_selects() {
    let fixtures = root().join("tests/fixtures/lape");
    let model = LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex()).unwrap();
    let languages: Vec<Language> = ["en", "fr", "de"].iter().map(|c| c.parse().unwrap()).collect();
    let fresh = counts(&model, &languages);
    if std::env::var_os("LANDERMT_WRITE_FIXTURES").is_some() {
        let json = serde_json::json!({ "languages": languages.iter().map(|l| l.code).collect::<Vec<_>>(), "activity": fresh });
        std::fs::write(fixtures.join("activity.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    }
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures.join("activity.json")).unwrap()).unwrap();
    let saved: Vec<Activity> = serde_json::from_value(saved["activity"].clone()).unwrap();
    assert_eq!(saved, fresh, "the counts changed; regenerate both fixtures (tests/fixtures/README.md)");

    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures.join("reference.json")).unwrap()).unwrap();
    let top_rate = reference["top_rate"].as_f64().unwrap();
    let ours = select(&languages, &saved, LapeSettings { top_rate, ..Default::default() });
    assert!((ours.filter - reference["filter"].as_f64().unwrap()).abs() < 1e-6);
    assert!((ours.bar - reference["bar"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(ours.kept as u64, reference["kept"].as_u64().unwrap());
    // p, recomputed as select does, against the reference's.
    for (l, layer) in reference["p"].as_array().unwrap().iter().enumerate() {
        for (j, unit) in layer.as_array().unwrap().iter().enumerate() {
            for (k, want) in unit.as_array().unwrap().iter().enumerate() {
                let got = saved[k].positive[l][j] as f64 / saved[k].tokens as f64;
                assert!((got - want.as_f64().unwrap()).abs() < 1e-6);
            }
        }
    }
    let units: Vec<std::collections::BTreeMap<String, Vec<usize>>> = serde_json::from_value(reference["units"].clone()).unwrap();
    assert_eq!(ours.units, units);
    assert!(units.iter().flat_map(|m| m.values()).map(Vec::len).sum::<usize>() > 0, "the fixture selects nothing: the check would be empty");
}

#[test]
fn without_a_gate_the_counted_activation_is_the_ffns_intermediate_unit() {
    let model = LanguageModel::load(root().join("tests/fixtures/hf-tiny/bloom-tiny"), &Device::flex()).unwrap();
    let ids = model.encode("The cat sleeps on the sofa.").unwrap();
    let mut taps = Taps::recording([Site::FfnGate, Site::FfnAct]);
    model.net.forward(&Batch::single(&ids), None, &mut taps);
    for layer in 0..model.config.num_layers {
        let a: Vec<f32> = taps.recorded[&(layer, Site::FfnGate)].clone().into_data().try_into_vec().unwrap();
        let b: Vec<f32> = taps.recorded[&(layer, Site::FfnAct)].clone().into_data().try_into_vec().unwrap();
        assert_eq!(a, b, "layer {layer}");
    }
    let a = activity(&model, std::slice::from_ref(&ids), 0, &|_| {});
    let positive: u64 = a.positive.iter().flatten().sum();
    let expected: usize = (0..model.config.num_layers).map(|l| taps.recorded[&(l, Site::FfnAct)].clone().into_data().try_into_vec::<f32>().unwrap().iter().filter(|x| **x > 0.0).count()).sum();
    assert_eq!((a.tokens, positive as usize), (ids.len(), expected));
}
