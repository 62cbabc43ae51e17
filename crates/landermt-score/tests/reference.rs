//! Stage 2 on the tiny fixture models against Hugging Face transformers: S, G and σ of every
//! block and module within 1e-4 relative, and the same general/specific split
//! (tests/fixtures/score, made by make_reference.py there; 4 FLORES sentences per language).

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::{Language, MonoSource, read_monolingual};
use landermt_model::LanguageModel;
use landermt_score::{SCORED, Settings, awareness, frozen, neurons};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// `got` equals `want` within `tol` relative to the largest |want| of the vector.
fn close(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: unit count");
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    let (i, worst) = got.iter().zip(want).map(|(a, b)| (a - b).abs()).enumerate().fold((0, 0f64), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(worst <= tol * scale, "{what}: unit {i} differs by {worst:.3e} ({:.3e} relative to the largest)", worst / scale);
    worst / scale
}

fn check(model_name: &str) {
    let reference: Value = serde_json::from_slice(&std::fs::read(fixtures().join("score/reference.json")).unwrap()).unwrap();
    let want = &reference["models"][model_name];
    let languages: Vec<Language> = ["en", "fr", "de"].iter().map(|c| c.parse().unwrap()).collect();
    let model = frozen(LanguageModel::load(fixtures().join("hf-tiny").join(model_name), &Device::flex().autodiff()).unwrap());
    let data = MonoSource::Flores { dir: fixtures().join("../../data/flores200-devtest"), first: 1, last: 4 };

    let mut per_language = Vec::new();
    for lang in &languages {
        let ids: Vec<Vec<u32>> = read_monolingual(&data, *lang).unwrap().iter().map(|s| model.encode(s).unwrap()).collect();
        let want_ids: Vec<Vec<u32>> = want["ids"][lang.code].as_array().unwrap().iter().map(|s| indices(s).into_iter().map(|i| i as u32).collect()).collect();
        assert_eq!(ids, want_ids, "{model_name} {lang}: token ids");
        // Batches of 3 (of sentences of different lengths) exercise left padding.
        let a = awareness(&model, &ids, 3, &|_| {});
        assert_eq!(a.positions as u64, want["positions"][lang.code].as_u64().unwrap(), "{model_name} {lang}: positions");
        per_language.push(a);
    }
    let num_layers = model.config.num_layers;
    let settings = Settings { model: model_name.into(), languages: languages.clone(), data, epsilon: 0.9, num_layers, selected: (0..num_layers).collect() };
    let (scores, summary) = neurons(&settings, &per_language).unwrap();

    let mut worst = 0f64;
    for layer in 0..num_layers {
        for site in SCORED {
            let w = &want["layers"][layer][site.name()];
            let got = &scores.modules[&(layer, site)];
            let what = |x: &str| format!("{model_name} layer {layer} {} {x}", site.name());
            for (l, lang) in languages.iter().enumerate() {
                worst = worst.max(close(&what(&format!("S.{lang}")), &got.s[l], &floats(&w["S"][lang.code]), 1e-4));
                worst = worst.max(close(&what(&format!("G.{lang}")), &got.g[l], &floats(&w["G"][lang.code]), 1e-4));
            }
            worst = worst.max(close(&what("var"), &got.var, &floats(&w["var"]), 1e-4));
            let split = &summary.layers[layer].modules[site.name()];
            assert_eq!(split.general, indices(&w["general"]), "{}", what("general units"));
            for lang in &languages {
                assert_eq!(split.specific[lang.code], indices(&w["specific"][lang.code]), "{}", what(&format!("{lang}-specific units")));
            }
        }
    }
    eprintln!("{model_name}: worst S/G/var difference {worst:.2e} relative to each vector's largest entry");
}

#[test]
fn scores_and_split_match_transformers_llama() {
    check("llama-tiny");
}

#[test]
fn scores_and_split_match_transformers_bloom() {
    check("bloom-tiny");
}

#[test]
fn scores_and_split_match_transformers_gemma3() {
    check("gemma3-tiny");
}
