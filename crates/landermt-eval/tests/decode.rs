//! Evaluation decoding on the tiny LLaMA: a batch gives the same translations as each sentence
//! alone, outputs stay in line order, and no output holds a newline.

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::{ParallelSource, read_parallel};
use landermt_eval::decode::{DecodeOptions, newline_ids, translate};
use landermt_model::LanguageModel;

#[test]
fn batched_decoding_equals_sentence_by_sentence_decoding() {
    let (model, direction, sources) = tiny_and_sources();
    let opts = DecodeOptions { max_new_tokens: 12, batch_size: 5, ..Default::default() };
    let batched = translate(&model, direction, &sources, &opts, &|_| {}).unwrap();
    let alone: Vec<String> = sources.iter().map(|s| translate(&model, direction, std::slice::from_ref(s), &DecodeOptions { batch_size: 1, ..opts.clone() }, &|_| {}).unwrap().remove(0)).collect();
    assert_eq!(batched, alone);
    assert!(batched.iter().all(|l| !l.contains('\n')));
    assert!(batched.iter().any(|l| !l.is_empty()), "{batched:?}");
    assert!(!newline_ids(&model).is_empty());
    // Beam search with one beam is greedy decoding.
    let one_beam = translate(&model, direction, &sources, &DecodeOptions { beams: 1, ..opts.clone() }, &|_| {}).unwrap();
    let beam_path = translate(&model, direction, &sources, &DecodeOptions { beams: 2, length_penalty: 0.0, ..opts.clone() }, &|_| {}).unwrap();
    assert_eq!(one_beam, batched);
    assert_eq!(beam_path.len(), sources.len());
}

#[test]
fn shots_come_before_the_test_prompt_as_complete_examples() {
    let direction = "en-fr".parse().unwrap();
    let shots = [landermt_data::Pair { src: "Hello.".into(), tgt: "Bonjour.".into() }];
    let alma = landermt_data::prompt::Template::default();
    assert_eq!(
        landermt_eval::decode::prompt(&alma, direction, "Good night.", &shots),
        "Translate this from English to French:\nEnglish: Hello.\nFrench: Bonjour.\nTranslate this from English to French:\nEnglish: Good night.\nFrench:"
    );
    let paper: landermt_data::prompt::Template = landermt_data::prompt::PAPER_TEST_TEMPLATE.parse().unwrap();
    assert_eq!(landermt_eval::decode::prompt(&paper, direction, "Good night.", &shots), "Translate \"Hello.\" to French.\nBonjour.\nTranslate \"Good night.\" to French.\n");
    assert_eq!(landermt_eval::decode::prompt(&paper, direction, "Good night.", &[]), "Translate \"Good night.\" to French.\n");
}

// The eval stage's batched greedy decoding (KV cache, left padding, newline stop) on wgpu gives
// flex's translations, line for line.
#[test]
fn decoding_on_wgpu_gives_the_flex_translations() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let direction = "en-fr".parse().unwrap();
    let source = ParallelSource::Flores { dir: root.join("data/flores200-devtest"), first: 1, last: 5 };
    let sources: Vec<String> = read_parallel(&source, direction).unwrap().into_iter().map(|p| p.src).collect();
    let opts = DecodeOptions { max_new_tokens: 12, batch_size: 5, ..Default::default() };
    let on = |device: &Device| {
        let model = LanguageModel::load(root.join("tests/fixtures/hf-tiny/llama-tiny"), device).unwrap();
        translate(&model, direction, &sources, &opts, &|_| {}).unwrap()
    };
    let Some(gpu) = landermt_model::Backend::Wgpu.test_device("decoding_on_wgpu_gives_the_flex_translations") else { return };
    assert_eq!(on(&gpu), on(&Device::flex()));
}

/// A line is at the limit when its decoding produced `max_new_tokens` tokens and none of them
/// stopped it: with one new token, every line whose token is not EOS.
#[test]
fn lines_that_run_to_the_token_limit_are_counted() {
    use landermt_eval::decode::{Decoder, Newline};
    use landermt_model::generate::{GreedyOptions, greedy};
    let (model, direction, sources) = tiny_and_sources();
    let opts = DecodeOptions { max_new_tokens: 1, batch_size: 5, newline: Newline::Ignore, ..Default::default() };
    let out = Decoder::new(&model, &opts).translate(direction, &sources, &[], &|_| {}).unwrap();
    let prompts: Vec<Vec<u32>> = sources.iter().map(|s| model.encode(&landermt_eval::decode::prompt(&opts.template, direction, s, &[])).unwrap()).collect();
    let first = greedy(&model.net, &prompts, &GreedyOptions { max_new_tokens: 1, stop_ids: vec![], line_breaks: None, no_repeat_ngram: 0, pad_id: 0 });
    let want: Vec<bool> = first.iter().map(|t| !model.config.eos_token_ids.contains(&t[0])).collect();
    assert_eq!(out.at_limit, want);
    assert!(want.iter().any(|&hit| hit));
}

/// Several test sets in one stream give each set's own translations, token counts and
/// runaways, in order, with in-context examples kept to their own set.
#[test]
fn test_sets_decoded_as_one_stream_equal_each_set_decoded_alone() {
    use landermt_eval::decode::{Decoder, Job};
    let (model, en_fr, sources) = tiny_and_sources();
    let fr_en = "fr-en".parse().unwrap();
    let shots = [landermt_data::Pair { src: "Bonjour.".into(), tgt: "Hello.".into() }];
    let opts = DecodeOptions { max_new_tokens: 12, batch_size: 3, ..Default::default() };
    let decoder = Decoder::new(&model, &opts);
    let jobs = [Job { direction: en_fr, sources: &sources[..3], shots: &[] }, Job { direction: fr_en, sources: &sources[1..], shots: &shots }];
    let done = std::cell::Cell::new(0);
    let together = decoder.translate_all(&jobs, &|n| done.set(done.get() + n)).unwrap();
    assert_eq!(done.get(), 7, "progress counts every sentence once");
    let alone: Vec<_> = jobs.iter().map(|j| decoder.translate(j.direction, j.sources, j.shots, &|_| {}).unwrap()).collect();
    assert_eq!(together, alone);
    assert_ne!(together[0].lines[1..3], together[1].lines[..2], "the two directions' prompts differ, and so do their outputs");
}

/// The tiny LLaMA on flex, and the first five FLORES devtest sources of en→fr.
fn tiny_and_sources() -> (LanguageModel, landermt_data::Direction, Vec<String>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = LanguageModel::load(root.join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex()).unwrap();
    let direction = "en-fr".parse().unwrap();
    let source = ParallelSource::Flores { dir: root.join("data/flores200-devtest"), first: 1, last: 5 };
    (model, direction, read_parallel(&source, direction).unwrap().into_iter().map(|p| p.src).collect())
}
