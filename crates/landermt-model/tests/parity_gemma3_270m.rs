//! Gemma 3 270M (Q4_K_M GGUF, dequantised) against transformers loading the same GGUF
//! (tests/fixtures/gemma3-270m, made by make_reference.py there): tokenizer ids on a
//! multilingual sample, every hidden state, the top-20 logits, greedy tokens and a left-padded
//! batch. The model (253 MB) is not in the repository: these tests run when it is in the model
//! cache (`cargo xtask fetch-model gemma-3-270m`) and say plainly that they were skipped
//! otherwise.

mod common;

use std::sync::OnceLock;

use common::{Reference, fixtures};
use landermt_model::generate::{GreedyOptions, greedy};
use landermt_model::{Backend, Batch, LanguageModel, Taps, cache};

fn model() -> Option<&'static LanguageModel> {
    static MODEL: OnceLock<Option<LanguageModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let m = cache::known("gemma-3-270m").unwrap();
            if !m.is_cached() {
                eprintln!("SKIPPED: Gemma 3 270M is not in the model cache ({}); run `cargo xtask fetch-model gemma-3-270m`", m.path().display());
                return None;
            }
            Some(LanguageModel::load(m.path(), &Backend::Flex.device().unwrap()).unwrap())
        })
        .as_ref()
}

fn dir() -> std::path::PathBuf {
    fixtures().join("gemma3-270m")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap()).unwrap()
}

/// max |a − b| / max |b|: hidden states of Gemma reach magnitudes in the hundreds.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    common::max_abs_diff(a, b).0 / scale
}

#[test]
fn gemma3_tokenizer_ids_match_transformers() {
    let Some(m) = model() else { return };
    let reference = Reference::open(dir().join("reference.safetensors"));
    let meta = meta();
    for (k, p) in meta["prompts"].as_array().unwrap().iter().enumerate() {
        assert_eq!(m.encode(p.as_str().unwrap()).unwrap(), reference.ids(&format!("ids_{k}")), "prompt {k}");
    }
    for (lang, sample) in meta["tokenizer_samples"].as_object().unwrap() {
        let ids = m.encode(sample["text"].as_str().unwrap()).unwrap();
        assert_eq!(ids, reference.ids(&format!("tok_ids_{lang}")), "tokenizer sample {lang}");
    }
}

#[test]
fn gemma3_hidden_states_top_logits_and_greedy_match_transformers() {
    let Some(m) = model() else { return };
    let reference = Reference::open(dir().join("reference.safetensors"));
    let (h, layers) = (m.config.hidden_size, m.config.num_layers);
    for k in 0..meta()["prompts"].as_array().unwrap().len() {
        let ids = reference.ids(&format!("ids_{k}"));
        let t = ids.len();
        let states = m.net.hidden_states(&Batch::single(&ids));
        let last = states[layers].clone();
        let mut worst_hidden = 0f32;
        let (want, _) = reference.f32(&format!("hidden_{k}"));
        for (entry, state) in states.into_iter().enumerate() {
            let got: Vec<f32> = state.into_data().try_into_vec().unwrap();
            let err = relative_error(&got, &want[entry * t * h..(entry + 1) * t * h]);
            worst_hidden = worst_hidden.max(err);
            assert!(err < 1e-3, "prompt {k} hidden state {entry}: relative error {err}");
        }

        let logits: Vec<f32> = m.net.logits(last).into_data().try_into_vec::<f32>().unwrap();
        let (top_ids, _) = reference.i64(&format!("top_ids_{k}"));
        let (top_logits, _) = reference.f32(&format!("top_logits_{k}"));
        let v = m.config.vocab_size;
        let mut worst_logits = 0f32;
        for pos in 0..t {
            let row = &logits[pos * v..(pos + 1) * v];
            let ours: Vec<f32> = top_ids[pos * 20..(pos + 1) * 20].iter().map(|&i| row[i as usize]).collect();
            let err = relative_error(&ours, &top_logits[pos * 20..(pos + 1) * 20]);
            worst_logits = worst_logits.max(err);
            assert!(err < 1e-3, "prompt {k} position {pos}: top-20 logits relative error {err}");
            let argmax = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
            assert_eq!(argmax as i64, top_ids[pos * 20], "prompt {k} position {pos}: argmax");
        }

        eprintln!("prompt {k}: hidden states max relative error {worst_hidden:.2e}, top-20 logits {worst_logits:.2e}");
        let want = reference.ids(&format!("greedy_{k}"));
        let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
        assert_eq!(greedy(&m.net, &[ids], &opts)[0], want, "prompt {k}: greedy tokens");
    }
}

#[test]
fn gemma3_left_padded_batch_matches_transformers() {
    let Some(m) = model() else { return };
    let reference = Reference::open(dir().join("reference.safetensors"));
    let batch = reference.batch();
    let hidden = m.net.forward(&batch, None, &mut Taps::none());
    let h = m.config.hidden_size;
    let last = hidden.narrow(1, batch.len - 1, 1).reshape([batch.rows, 1, h]);
    let got: Vec<f32> = last.clone().into_data().try_into_vec::<f32>().unwrap();
    let err = relative_error(&got, &reference.f32("batch_last_hidden").0);
    eprintln!("batch: last hidden max relative error {err:.2e}");
    assert!(err < 1e-3, "batch last hidden: relative error {err}");
    let logits: Vec<f32> = m.net.logits(last).into_data().try_into_vec::<f32>().unwrap();
    let (top_ids, _) = reference.i64("batch_top_ids");
    let (top_logits, _) = reference.f32("batch_top_logits");
    let v = m.config.vocab_size;
    for r in 0..batch.rows {
        let ours: Vec<f32> = top_ids[r * 20..(r + 1) * 20].iter().map(|&i| logits[r * v + i as usize]).collect();
        let err = relative_error(&ours, &top_logits[r * 20..(r + 1) * 20]);
        assert!(err < 1e-3, "batch row {r}: top-20 logits relative error {err}");
    }
}

/// The decoding model (`into_decoding`: column-major blocks, the head's bf16 screen) gives
/// transformers' greedy tokens, alone and with the prompts in one batch, and its steps went
/// through the screen.
#[test]
fn gemma3_decoding_model_greedy_matches_transformers() {
    if model().is_none() {
        return;
    }
    let m = LanguageModel::load(cache::known("gemma-3-270m").unwrap().path(), &Backend::Flex.device().unwrap()).unwrap().into_decoding();
    let (screened, on_amx) = (landermt_model::screen::screened_steps(), landermt_model::screen::amx_steps());
    let reference = Reference::open(dir().join("reference.safetensors"));
    let prompts = meta()["prompts"].as_array().unwrap().len();
    let (mut seqs, mut wants) = (Vec::new(), Vec::new());
    for k in 0..prompts {
        let (ids, want) = (reference.ids(&format!("ids_{k}")), reference.ids(&format!("greedy_{k}")));
        let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
        assert_eq!(greedy(&m.net, std::slice::from_ref(&ids), &opts)[0], want, "prompt {k}: greedy tokens of the decoding model");
        seqs.push(ids);
        wants.push(want);
    }
    let shortest = wants.iter().map(Vec::len).min().unwrap();
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: shortest, stop_ids: vec![], pad_id: m.config.pad_token_id.unwrap_or(0) };
    for (k, row) in greedy(&m.net, &seqs, &opts).iter().enumerate() {
        assert_eq!(row[..], wants[k][..shortest], "prompt {k} in a batch: greedy tokens of the decoding model");
    }
    if landermt_model::screen::enabled() {
        assert!(landermt_model::screen::screened_steps() > screened, "no step went through the screen");
        // The batched steps (2 rows and more) go through the tiles where the CPU has them.
        if m.net.screen.as_ref().is_some_and(|s| s.engine() == landermt_model::screen::Engine::Amx) {
            assert!(landermt_model::screen::amx_steps() > on_amx, "no batched step went through AMX");
        } else {
            eprintln!("SKIPPED for AMX: the screen runs on AVX on this CPU");
        }
    }
}
