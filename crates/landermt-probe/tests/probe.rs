//! Stage 1 on the tiny fixture models: batched, padded block means equal a direct computation
//! from single-sentence forward passes, and A, D and the selections equal those computed with
//! Hugging Face transformers (tests/fixtures/probe, made by make_reference.py there).

use std::path::PathBuf;

use landermt_data::{Direction, ParallelSource, read_parallel};
use landermt_model::{Backend, Batch, LanguageModel, Site, Taps};
use landermt_probe::{Rule, block_means, curves, layers, prompt};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn prompts(direction: Direction, first: usize, last: usize) -> Vec<String> {
    let source = ParallelSource::Flores { dir: fixtures().join("../../data/flores200-devtest"), first, last };
    read_parallel(&source, direction).unwrap().iter().map(|p| prompt(direction, p)).collect()
}

fn load(name: &str) -> LanguageModel {
    LanguageModel::load(fixtures().join("hf-tiny").join(name), &Backend::Flex.device().unwrap()).unwrap()
}

#[test]
fn batched_block_means_equal_single_sentence_means() {
    let model = load("llama-tiny");
    let ps = prompts("en-fr".parse().unwrap(), 1, 5);
    let batched = block_means(&model, &ps, 3, &|_| {}).unwrap();
    for (n, p) in ps.iter().enumerate() {
        let mut taps = Taps::recording([Site::Block]);
        model.net.forward(&Batch::single(&model.encode(p).unwrap()), None, &mut taps);
        for layer in 0..model.config.num_layers {
            let direct: f32 = taps.recorded[&(layer, Site::Block)].clone().mean().into_data().try_into_vec::<f32>().unwrap()[0];
            let got = batched[n][layer];
            assert!((got - direct as f64).abs() <= 1e-5 * direct.abs().max(1.0) as f64, "prompt {n} layer {layer}: {got} vs {direct}");
        }
    }
}

#[test]
fn a_d_and_selections_match_transformers() {
    let path = fixtures().join("probe/reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let [first, last] = [0, 1].map(|i| reference["lines"][i].as_u64().unwrap() as usize);
    for (name, want) in reference["models"].as_object().unwrap() {
        let model = load(name);
        let mut all = Vec::new();
        for dir in ["en-fr", "fr-en"] {
            let direction: Direction = dir.parse().unwrap();
            let ps = prompts(direction, first, last);
            let want_ids: Vec<u32> = serde_json::from_value(want["directions"][dir]["first_ids"].clone()).unwrap();
            assert_eq!(model.encode(&ps[0]).unwrap(), want_ids, "{name} {dir}: prompt ids");
            let a = block_means(&model, &ps, 4, &|_| {}).unwrap();
            let want_a: Vec<Vec<f64>> = serde_json::from_value(want["directions"][dir]["A"].clone()).unwrap();
            for (n, (row, want_row)) in a.iter().zip(&want_a).enumerate() {
                for (i, (x, y)) in row.iter().zip(want_row).enumerate() {
                    assert!((x - y).abs() <= 1e-5, "{name} {dir} sentence {n} block {i}: A {x} vs {y}");
                }
            }
            let c = curves(direction, &a);
            let want_d: Vec<f64> = serde_json::from_value(want["directions"][dir]["D"].clone()).unwrap();
            for (i, (x, y)) in c.d.iter().zip(&want_d).enumerate() {
                assert!((x - y).abs() <= 1e-5, "{name} {dir} D_{i}: {x} vs {y}");
            }
            all.push(c);
        }
        let pairs = layers(name.clone(), all.clone(), Rule::Pairs, 2).unwrap();
        let want_pairs: Vec<usize> = serde_json::from_value(want["selected_pairs_k2"].clone()).unwrap();
        assert_eq!(pairs.selected, want_pairs, "{name}: pairs");
        let blocks = layers(name.clone(), all, Rule::Blocks, 2).unwrap();
        let want_blocks: Vec<usize> = serde_json::from_value(want["selected_blocks_k2"].clone()).unwrap();
        assert_eq!(blocks.selected, want_blocks, "{name}: blocks");
        eprintln!("{name}: mean D {:?} → pairs {:?}, blocks {:?}", pairs.mean_d, pairs.selected, blocks.selected);
    }
}
