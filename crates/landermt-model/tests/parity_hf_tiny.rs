//! Parity with Hugging Face transformers on the tiny BLOOM, LLaMA, Gemma 3 and Qwen2 fixtures
//! (tests/fixtures/hf-tiny, made by tests/fixtures/make_hf_tiny.py): token ids, logits, every
//! hidden state, greedy tokens and a left-padded batch, on both CPU backends and on wgpu (a GPU
//! where there is one, Mesa's lavapipe software Vulkan on a CPU-only machine).

mod common;

use burn::tensor::Tensor;
use common::{Reference, assert_close, fixtures, real_positions};
use landermt_model::generate::{GreedyOptions, greedy, greedy_stream};
use landermt_model::{Backend, Batch, LanguageModel, Taps};

/// The largest difference allowed from transformers' f32 values. The CPU backends sum in the
/// same order as PyTorch's CPU kernels, up to rounding; wgpu's kernels reduce in tiles, in
/// another order, so their rounding differs more.
fn tolerance(backend: Backend) -> f32 {
    match backend {
        Backend::Wgpu | Backend::Cuda => 1e-3,
        _ => 1e-4,
    }
}

fn flat3(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// transformers' `output_hidden_states`, flattened, and the logits.
fn hidden_states(model: &LanguageModel, ids: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let states = model.net.hidden_states(&Batch::single(ids));
    let last = states.last().unwrap().clone();
    (states.into_iter().flat_map(flat3).collect(), flat3(model.net.logits(last)))
}

fn check_model(name: &str, backend: Backend) {
    let dir = fixtures().join("hf-tiny").join(name);
    let Some(device) = backend.test_device(&format!("parity of {name} on {}", backend.name())) else { return };
    let tol = tolerance(backend);
    let model = LanguageModel::load(&dir, &device).unwrap();
    let reference = Reference::open(dir.join("reference.safetensors"));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let prompts: Vec<String> = serde_json::from_value(meta["prompts"].clone()).unwrap();
    let mut seqs = Vec::new();
    for (k, text) in prompts.iter().enumerate() {
        let ids = model.tokenizer.encode(text, false).unwrap();
        assert_eq!(ids, reference.ids(&format!("ids_{k}")), "{name} prompt {k}: token ids");

        let (hidden, logits) = hidden_states(&model, &ids);
        assert_close(&format!("{name}/{backend} prompt {k} hidden"), &hidden, &reference.f32(&format!("hidden_{k}")).0, tol);
        assert_close(&format!("{name}/{backend} prompt {k} logits"), &logits, &reference.f32(&format!("logits_{k}")).0, tol);

        seqs.push(ids);
    }

    // The prompts left-padded into one batch, with the reference's own ids and mask.
    let batch = reference.batch();
    let pad = model.config.pad_token_id.expect("fixtures set pad_token_id");
    assert!(batch == Batch::left_padded(&seqs, pad), "{name}: our left padding differs from the reference's");
    let logits = flat3(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
    let (want, _) = reference.f32("batch_logits");
    let real = |v: &[f32]| real_positions(v, &batch, model.config.vocab_size);
    assert_close(&format!("{name}/{backend} batch logits"), &real(&logits), &real(&want), tol);

    check_decoding(&format!("{name}/{backend}"), &model.net, &reference, &seqs, pad);

    // The decoding model: its blocks column-major and, for a tied head on flex, greedy tokens
    // from the bf16 screen of the head (`landermt_model::screen`), which must find the same.
    let decoding = LanguageModel::load(&dir, &device).unwrap().into_decoding();
    let screened = landermt_model::screen::screened_steps();
    check_decoding(&format!("{name}/{backend} decoding model"), &decoding.net, &reference, &seqs, pad);
    let tied = decoding.net.lm_head.is_none();
    if backend == Backend::Flex && tied && landermt_model::screen::enabled() {
        assert!(decoding.net.screen.is_some(), "{name}: a tied f32 head on flex is screened");
        assert!(landermt_model::screen::screened_steps() > screened, "{name}: no decoding step went through the screen");
    }
}

/// Greedy decoding of `seqs` on `net`, each prompt alone, batched and streamed, against the
/// reference's tokens.
fn check_decoding(label: &str, net: &landermt_model::Transformer, reference: &Reference, seqs: &[Vec<u32>], pad: u32) {
    for (k, ids) in seqs.iter().enumerate() {
        let want = reference.ids(&format!("greedy_{k}"));
        let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
        assert_eq!(greedy(net, std::slice::from_ref(ids), &opts)[0], want, "{label} prompt {k}: greedy tokens");
    }

    // Batched greedy decoding must give each row what it gets alone.
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 16, stop_ids: vec![], pad_id: pad };
    let batched = greedy(net, seqs, &opts);
    for (k, row) in batched.iter().enumerate() {
        assert_eq!(row, &reference.ids(&format!("greedy_{k}")), "{label}: batched greedy row {k}");
    }

    // Continuous batching, one row fewer than prompts, with a stop token that ends the first row
    // early: the last prompt joins the batch mid-way (its cache shorter than the others', padded
    // on merge), and every row must still decode as alone, up to its first stop token.
    let stop = reference.ids("greedy_0")[3];
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 16, stop_ids: vec![stop], pad_id: pad };
    let mut finished = Vec::new();
    let streamed = greedy_stream(net, seqs, (seqs.len() - 1).max(1), &opts, &mut |p| finished.push(p));
    for (k, row) in streamed.iter().enumerate() {
        let want = reference.ids(&format!("greedy_{k}"));
        let cut = want.iter().position(|&t| t == stop).map_or(want.len(), |i| i + 1);
        assert_eq!(row, &want[..cut], "{label}: streamed greedy row {k}");
    }
    finished.sort_unstable();
    assert_eq!(finished, (0..seqs.len()).collect::<Vec<_>>(), "{label}: every prompt reported done once");
}

#[test]
fn bloom_tiny_matches_transformers_on_flex() {
    check_model("bloom-tiny", Backend::Flex);
}

#[test]
fn bloom_tiny_matches_transformers_on_ndarray() {
    check_model("bloom-tiny", Backend::Ndarray);
}

#[test]
fn llama_tiny_matches_transformers_on_flex() {
    check_model("llama-tiny", Backend::Flex);
}

#[test]
fn llama_tiny_matches_transformers_on_ndarray() {
    check_model("llama-tiny", Backend::Ndarray);
}

// Gemma 3 with a sliding window of 4 (engaged on every prompt), grouped-query attention,
// q_dim ≠ hidden, query_pre_attn_scalar ≠ head_dim and per-layer-type RoPE bases.
#[test]
fn gemma3_tiny_matches_transformers_on_flex() {
    check_model("gemma3-tiny", Backend::Flex);
}

#[test]
fn gemma3_tiny_matches_transformers_on_ndarray() {
    check_model("gemma3-tiny", Backend::Ndarray);
}

// Qwen2: q/k/v biases, grouped-query attention, tied head.
#[test]
fn qwen2_tiny_matches_transformers_on_flex() {
    check_model("qwen2-tiny", Backend::Flex);
}

#[test]
fn qwen2_tiny_matches_transformers_on_ndarray() {
    check_model("qwen2-tiny", Backend::Ndarray);
}

// wgpu: the same checks on whatever adapter `wgpu_adapter` picks (lavapipe in CI).
#[test]
fn bloom_tiny_matches_transformers_on_wgpu() {
    check_model("bloom-tiny", Backend::Wgpu);
}

#[test]
fn llama_tiny_matches_transformers_on_wgpu() {
    check_model("llama-tiny", Backend::Wgpu);
}

#[test]
fn gemma3_tiny_matches_transformers_on_wgpu() {
    check_model("gemma3-tiny", Backend::Wgpu);
}

#[test]
fn qwen2_tiny_matches_transformers_on_wgpu() {
    check_model("qwen2-tiny", Backend::Wgpu);
}
