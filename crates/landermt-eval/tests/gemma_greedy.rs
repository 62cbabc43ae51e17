//! Gemma 3 270M, untuned, with the default prompt, against transformers' greedy decoding of the
//! same GGUF (tests/fixtures/gemma3-270m/greedy-flores-en-fr.json, made by
//! bench/greedy_reference.py one sentence at a time): the prompt's ids and every hypothesis
//! must be identical, although we decode in left-padded batches. Runs when the model is in the
//! cache (`cargo xtask fetch-model gemma-3-270m`) and says plainly that it was skipped otherwise.

use std::path::PathBuf;

use landermt_data::prompt::Template;
use landermt_data::{ParallelSource, read_parallel};
use landermt_eval::decode::{DecodeOptions, Decoder};
use landermt_model::{Backend, LanguageModel, cache};

#[test]
fn untuned_gemma_translates_as_transformers_does_with_the_default_prompt() {
    let m = cache::known("gemma-3-270m").unwrap();
    if !m.is_cached() {
        eprintln!("SKIPPED: Gemma 3 270M is not in the model cache ({}); run `cargo xtask fetch-model gemma-3-270m`", m.path().display());
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("tests/fixtures/gemma3-270m/greedy-flores-en-fr.json")).unwrap()).unwrap();
    let template: Template = reference["template"].as_str().unwrap().parse().unwrap();
    assert_eq!(template, Template::default(), "the fixture was made with another template");
    let (first, last) = (reference["first"].as_u64().unwrap() as usize, reference["last"].as_u64().unwrap() as usize);
    let direction = "en-fr".parse().unwrap();
    let pairs = read_parallel(&ParallelSource::Flores { dir: root.join("data/flores200-devtest"), first, last }, direction).unwrap();
    let sources: Vec<String> = pairs.into_iter().map(|p| p.src).collect();

    let model = LanguageModel::load(m.path(), &Backend::Flex.device().unwrap()).unwrap();
    for (k, src) in sources.iter().enumerate() {
        let ids: Vec<u32> = serde_json::from_value(reference["prompt_ids"][k].clone()).unwrap();
        assert_eq!(model.encode(&template.prompt(direction, src)).unwrap(), ids, "prompt of line {}", first + k);
    }
    let opts = DecodeOptions { template, max_new_tokens: reference["max_new_tokens"].as_u64().unwrap() as usize, batch_size: 4, ..Default::default() };
    let decoded = Decoder::new(&model, &opts).translate(direction, &sources, &[], &|_| {}).unwrap();
    let want: Vec<String> = serde_json::from_value(reference["hypotheses"].clone()).unwrap();
    for (k, (ours, theirs)) in decoded.lines.iter().zip(&want).enumerate() {
        assert_eq!(ours, theirs, "line {}", first + k);
    }
    // Their ids include the token that stopped decoding, as our count does.
    let generated: usize = reference["generated_ids"].as_array().unwrap().iter().map(|g| g.as_array().unwrap().len()).sum();
    assert_eq!(decoded.generated_tokens, generated);
}
