//! What the training tests share: the repository, the tiny LLaMA on an autodiff device, and
//! stage 2 run on it.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::{Language, MonoSource, read_monolingual};
use landermt_model::LanguageModel;
use landermt_score::{Neurons, Scores, Settings, awareness, frozen, neurons};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn load() -> LanguageModel {
    LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex().autodiff()).unwrap()
}

/// Stage 2 on 4 FLORES sentences of en, fr, de, layers 2 and 3 selected; and the languages.
pub fn stage2() -> (Scores, Neurons, Vec<Language>) {
    let model = frozen(load());
    let data = MonoSource::Flores { dir: root().join("data/flores200-devtest"), first: 1, last: 4 };
    let languages: Vec<Language> = ["en", "fr", "de"].iter().map(|c| c.parse().unwrap()).collect();
    let per: Vec<_> = languages.iter().map(|&l| awareness(&model, &read_monolingual(&data, l).unwrap().iter().map(|s| model.encode(s).unwrap()).collect::<Vec<_>>(), 4, &|_| {})).collect();
    let settings = Settings { model: "llama-tiny".into(), languages: languages.clone(), data, epsilon: 0.9, num_layers: 4, selected: vec![2, 3] };
    let (scores, neurons) = neurons(&settings, &per).unwrap();
    (scores, neurons, languages)
}
