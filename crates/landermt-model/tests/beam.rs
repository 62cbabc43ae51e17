//! Beam search: one beam is greedy decoding; with several beams, the reported score of the
//! result equals its log-probability recomputed by one plain forward pass over prompt and
//! output (which fails if the KV cache does not follow the surviving beams).

mod common;

use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use common::fixtures;
use landermt_model::generate::{BeamOptions, GreedyOptions, beam, greedy};
use landermt_model::{Batch, LanguageModel, Taps};

fn load() -> LanguageModel {
    LanguageModel::load(fixtures().join("hf-tiny").join("llama-tiny"), &Device::flex()).unwrap()
}

const PROMPTS: [&str; 3] = ["Le chat dort sur", "The weather today is", "Translate \"good morning\" to French.\n"];

#[test]
fn one_beam_is_greedy() {
    let model = load();
    let stop = model.config.eos_token_ids.clone();
    for p in PROMPTS {
        let ids = model.encode(p).unwrap();
        let g = greedy(&model.net, std::slice::from_ref(&ids), &GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 12, stop_ids: stop.clone(), pad_id: 0 }).remove(0);
        let (b, _) = beam(&model.net, &ids, &BeamOptions { line_breaks: None, no_repeat_ngram: 0, beams: 1, length_penalty: 1.0, max_new_tokens: 12, stop_ids: stop.clone() });
        assert_eq!(b, g, "{p}");
    }
}

#[test]
fn beam_scores_equal_a_fresh_forward_pass() {
    let model = load();
    // Stop at a frequent token too, so that some hypotheses finish early.
    let stop = vec![model.config.eos_token_ids[0], model.encode(".").unwrap().last().copied().unwrap()];
    for p in PROMPTS {
        let ids = model.encode(p).unwrap();
        let (out, score) = beam(&model.net, &ids, &BeamOptions { line_breaks: None, no_repeat_ngram: 0, beams: 4, length_penalty: 1.0, max_new_tokens: 10, stop_ids: stop.clone() });
        assert!(!out.is_empty());
        let all: Vec<u32> = ids.iter().chain(&out).copied().collect();
        let h = model.net.forward(&Batch::single(&all), None, &mut Taps::none());
        let v = model.config.vocab_size;
        let logp: Vec<f32> = log_softmax(model.net.logits(h), 2).into_data().try_into_vec().unwrap();
        let want: f64 = (ids.len()..all.len()).map(|pos| logp[(pos - 1) * v + all[pos] as usize] as f64).sum();
        assert!((score - want).abs() < 1e-3, "{p}: beam score {score}, recomputed {want}");
    }
}

/// Rows that stop leave the batch; the others must go on exactly as if decoded alone.
#[test]
fn a_batch_whose_rows_stop_at_different_steps_decodes_each_row_as_alone() {
    let model = load();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| model.encode(p).unwrap()).collect();
    let free = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 10, stop_ids: vec![], pad_id: 0 };
    let long = greedy(&model.net, &prompts, &free);
    // Stop tokens that end the first row early and leave another row running longer.
    let stop = vec![long[0][2]];
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, stop_ids: stop.clone(), ..free };
    let batched = greedy(&model.net, &prompts, &opts);
    let lens: Vec<usize> = batched.iter().map(Vec::len).collect();
    assert!(lens.iter().min() < lens.iter().max(), "rows must stop at different steps: {lens:?}");
    for (i, p) in prompts.iter().enumerate() {
        let alone = greedy(&model.net, std::slice::from_ref(p), &opts).remove(0);
        assert_eq!(batched[i], alone, "row {i}");
        // And it is the free continuation cut after the first stop token.
        let cut = long[i].iter().position(|t| stop.contains(t)).map_or(long[i].len(), |k| k + 1);
        assert_eq!(alone, long[i][..cut], "row {i}");
    }
}

/// A row whose first token is a newline goes on to the line after it; the next newline after
/// text ends it. The tiny model's own tokens stand for the newlines: its first greedy token is
/// taken as "\n", and a later one as "\n" too.
#[test]
fn a_leading_newline_does_not_end_a_row_but_a_newline_after_text_does() {
    use landermt_model::generate::LineBreaks;
    let model = load();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| model.encode(p).unwrap()).collect();
    let free = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 10, stop_ids: vec![], pad_id: 0 };
    let long = greedy(&model.net, &prompts, &free);
    // A row whose first three tokens are a, x, b with x neither a nor b, and b != a.
    let (row, a, b) = long.iter().enumerate().find_map(|(i, t)| (t[0] != t[2] && t[1] != t[0] && t[1] != t[2]).then_some((i, t[0], t[2]))).expect("a row with three distinct first tokens");
    let breaks = std::sync::Arc::new(LineBreaks::new(model.config.vocab_size, |id| Some(if id == a || id == b { "\n" } else { "w" }.to_string())));
    let opts = GreedyOptions { line_breaks: Some(breaks), ..free.clone() };
    let out = greedy(&model.net, std::slice::from_ref(&prompts[row]), &opts).remove(0);
    assert_eq!(out, long[row][..3], "it ends at the newline after text, its stop token kept");
    // The old cut at the first newline token ends it at once.
    let first = greedy(&model.net, std::slice::from_ref(&prompts[row]), &GreedyOptions { stop_ids: vec![a, b], ..free }).remove(0);
    assert_eq!(first, [a]);
}

/// With `no_repeat_ngram = n` no n-gram occurs twice in a row's output, and the output equals
/// the free continuation up to the first token that would have repeated one.
#[test]
fn no_repeat_ngram_keeps_every_ngram_of_the_output_distinct() {
    let model = load();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| model.encode(p).unwrap()).collect();
    let free = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 48, stop_ids: vec![], pad_id: 0 };
    let long = greedy(&model.net, &prompts, &free);
    let first_repeat = |t: &[u32], n: usize| (n..=t.len()).find(|&end| t[..end - 1].windows(n).any(|w| *w == t[end - n..end]));
    assert!(long.iter().all(|t| first_repeat(t, 1).is_some()), "every row repeats a token: {long:?}");
    for n in [1, 2, 3] {
        let guarded = greedy(&model.net, &prompts, &GreedyOptions { no_repeat_ngram: n, ..free.clone() });
        for (g, l) in guarded.iter().zip(&long) {
            assert_eq!(first_repeat(g, n), None, "n = {n}: {g:?}");
            let same = first_repeat(l, n).map_or(l.len(), |end| end - 1);
            assert_eq!(g[..same], l[..same], "n = {n}: the guard changed tokens before the first repeat");
        }
    }
}
