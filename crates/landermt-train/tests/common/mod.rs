//! What the training tests share: the repository, the tiny LLaMA on an autodiff device, and
//! stage 2 run on it.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::prompt::mixed;
use landermt_data::{Direction, Language, MonoSource, ParallelSource, read_monolingual, read_parallel};
use landermt_model::LanguageModel;
use landermt_score::{Neurons, Scores, Settings, awareness, frozen, neurons};
use landermt_train::{Example, example};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn load() -> LanguageModel {
    load_on(&Device::flex().autodiff())
}

/// The tiny LLaMA on `device` (an autodiff one, to train).
pub fn load_on(device: &Device) -> LanguageModel {
    LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), device).unwrap()
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

/// The first `n` en→fr training pairs that fit 80 tokens, each with one of the ref-code's ten
/// templates in turn (short pairs: the tiny model's tokenizer spends many tokens per word).
pub fn examples(model: &LanguageModel, n: usize) -> Vec<Example> {
    let direction: Direction = "en-fr".parse().unwrap();
    let source = ParallelSource::Tsv { path: root().join("data/corpus/train.en-fr.tsv"), src_lang: "en".into(), tgt_lang: "fr".into() };
    let pairs = read_parallel(&source, direction).unwrap();
    let fit = pairs.iter().enumerate().filter_map(|(i, p)| example(model, direction, p, &mixed()[i % mixed().len()], 80).unwrap());
    fit.take(n).collect()
}

/// The trained tensors of a run's `delta.safetensors` (its metadata holds timings, which differ).
pub fn delta_tensors(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("delta.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    out.sort();
    out
}
