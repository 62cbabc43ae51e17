//! `model.dtype = "bf16"` on the tiny fixtures (tests/fixtures/hf-tiny), against transformers
//! run over the same weights rounded to bf16 (`reference-bf16.safetensors`, made by
//! tests/fixtures/make_bf16_reference.py): the linear maps and embeddings are stored in bf16,
//! and every product must still equal an f32 computation over those values, to the f32 parity
//! limit. The second limit, against the unrounded f32 model, states what the rounding itself
//! costs on these fixtures; it is a property of the weights, not of our kernels.

mod common;

use burn::tensor::{DType, Tensor};
use common::{Reference, assert_close, fixtures, max_abs_diff, real_positions};
use landermt_model::generate::{GreedyOptions, greedy};
use landermt_model::{Backend, Batch, LanguageModel, Taps, WeightDtype};

/// Same as f32 parity: the products sum in f32 over the same (rounded) values.
const TOL_ROUNDED: f32 = 1e-4;

/// Largest |logit(bf16 weights) − logit(f32 weights)| seen on each fixture by transformers
/// (the script prints it), with headroom: gemma3-tiny's logits reach ±40, hence its 0.57.
fn rounding_limit(name: &str) -> f32 {
    match name {
        "gemma3-tiny" => 1.0,
        _ => 0.2,
    }
}

fn flat3(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn check(name: &str) {
    let dir = fixtures().join("hf-tiny").join(name);
    let device = Backend::Flex.device().unwrap();
    let model = LanguageModel::load_as(&dir, &device, WeightDtype::Bf16).unwrap();
    assert_eq!(model.net.embed_tokens.val().dtype(), DType::BF16, "{name}: embeddings stored in bf16");
    assert_eq!(model.net.layers[0].mlp.down_proj.weight.val().dtype(), DType::BF16, "{name}: linear maps stored in bf16");
    let rounded = Reference::open(dir.join("reference-bf16.safetensors"));
    let exact = Reference::open(dir.join("reference.safetensors"));
    let mut k = 0;
    while exact.has(&format!("ids_{k}")) {
        let ids = exact.ids(&format!("ids_{k}"));
        let logits = flat3(model.net.logits(model.net.forward(&Batch::single(&ids), None, &mut Taps::none())));
        assert_close(&format!("{name} bf16 prompt {k} logits"), &logits, &rounded.f32(&format!("logits_{k}")).0, TOL_ROUNDED);
        let (shift, _) = max_abs_diff(&logits, &exact.f32(&format!("logits_{k}")).0);
        assert!(shift <= rounding_limit(name), "{name} prompt {k}: bf16 weights moved the logits by {shift}, over {}", rounding_limit(name));
        // Greedy decoding with the KV cache, over the rounded weights.
        let want = rounded.ids(&format!("greedy_{k}"));
        let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
        assert_eq!(greedy(&model.net, std::slice::from_ref(&ids), &opts)[0], want, "{name} bf16 prompt {k}: greedy tokens");
        k += 1;
    }
    let batch = exact.batch();
    let logits = flat3(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
    let vocab = model.config.vocab_size;
    let real = |v: &[f32]| real_positions(v, &batch, vocab);
    assert_close(&format!("{name} bf16 batch logits"), &real(&logits), &real(&rounded.f32("batch_logits").0), TOL_ROUNDED);
    // The decoding layout (bf16 weights column-major, read in place by `skinny`'s bf16 kernels):
    // the same logits and greedy tokens.
    let model = model.into_decoding();
    assert_eq!(model.net.layers[0].mlp.down_proj.weight.val().dtype(), DType::BF16, "{name}: the decoding layout keeps bf16");
    let logits = flat3(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
    assert_close(&format!("{name} bf16 batch logits, decoding layout"), &real(&logits), &real(&rounded.f32("batch_logits").0), TOL_ROUNDED);
    let ids = exact.ids("ids_0");
    let want = rounded.ids("greedy_0");
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
    assert_eq!(greedy(&model.net, std::slice::from_ref(&ids), &opts)[0], want, "{name} bf16 decoding layout: greedy tokens");
}

#[test]
fn bf16_weights_match_transformers_over_the_rounded_weights() {
    for name in ["bloom-tiny", "llama-tiny", "gemma3-tiny", "qwen2-tiny"] {
        check(name);
    }
}

/// `eval.weights = "bf16"`: a model loaded in f32 and rounded afterwards (`stored_in`, as the
/// eval stage does to a trained system) computes what transformers computes over the rounded
/// weights, in the decoding layout too; a tensor left in f32 would move the logits past the
/// limit (gemma3-tiny's bf16 rounding shifts them by up to 0.57).
#[test]
fn weights_rounded_after_loading_match_transformers_over_the_rounded_weights() {
    for name in ["bloom-tiny", "llama-tiny", "gemma3-tiny", "qwen2-tiny"] {
        let dir = fixtures().join("hf-tiny").join(name);
        let device = Backend::Flex.device().unwrap();
        let model = LanguageModel::load(&dir, &device).unwrap().stored_in(WeightDtype::Bf16);
        let net = &model.net;
        let attn = &net.layers[0].attn;
        for (what, t) in [("embedding", net.embed_tokens.val()), ("q_proj", attn.q_proj.weight.val()), ("o_proj", attn.o_proj.weight.val()), ("up_proj", net.layers[0].mlp.up_proj.weight.val())] {
            assert_eq!(t.dtype(), DType::BF16, "{name}: {what} rounded to bf16");
        }
        let rounded = Reference::open(dir.join("reference-bf16.safetensors"));
        let batch = Reference::open(dir.join("reference.safetensors")).batch();
        let vocab = model.config.vocab_size;
        let real = |v: &[f32]| real_positions(v, &batch, vocab);
        let want = real(&rounded.f32("batch_logits").0);
        let logits = flat3(net.logits(net.forward(&batch, None, &mut Taps::none())));
        assert_close(&format!("{name} rounded after loading: batch logits"), &real(&logits), &want, TOL_ROUNDED);
        let model = model.into_decoding();
        let logits = flat3(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
        assert_close(&format!("{name} rounded after loading, decoding layout: batch logits"), &real(&logits), &want, TOL_ROUNDED);
    }
}

#[test]
fn bf16_is_refused_off_flex_with_a_clear_error() {
    let Some(device) = Backend::Wgpu.test_device("bf16_is_refused_off_flex_with_a_clear_error") else { return };
    let dir = fixtures().join("hf-tiny").join("llama-tiny");
    let err = LanguageModel::load_as(&dir, &device, WeightDtype::Bf16).unwrap_err().to_string();
    assert!(err.contains("bf16") && err.contains("flex"), "{err}");
}
