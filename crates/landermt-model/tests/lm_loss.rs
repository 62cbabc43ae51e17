//! The held-out LM loss of forgetting (`loss::lm_losses`), which batches texts by length and
//! sends only real positions through the head: against transformers' logits on the tiny
//! fixtures (−log softmax of each next token, in f64), and against the plain log-softmax loss
//! of each text on its own, on flex (the fused host pass) and ndarray (the tensor-op path).

mod common;

use common::{Reference, fixtures};
use landermt_model::loss::{lm_losses, sequence_losses};
use landermt_model::{Backend, Batch, LanguageModel, Taps};

fn prompts(name: &str) -> Vec<String> {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("hf-tiny").join(name).join("reference.json")).unwrap()).unwrap();
    serde_json::from_value(meta["prompts"].clone()).unwrap()
}

/// The mean over positions j of −log softmax(logits_j)[ids_{j+1}], from `[T, V]` logits.
fn mean_nll(logits: &[f32], ids: &[u32], v: usize) -> f64 {
    let rows: Vec<&[f32]> = logits.chunks_exact(v).collect();
    let nll = |j: usize| {
        let max = rows[j].iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let log_z = max + rows[j].iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        log_z - rows[j][ids[j + 1] as usize] as f64
    };
    (0..ids.len() - 1).map(nll).sum::<f64>() / (ids.len() - 1) as f64
}

/// BLOOM and Qwen2 add no special tokens, so the texts `lm_losses` reads are the reference's
/// own ids; two per batch, in an order that is not by length, so sorting and putting the
/// losses back in order are both exercised.
#[test]
fn lm_losses_match_transformers_logits() {
    for name in ["bloom-tiny", "qwen2-tiny"] {
        let dir = fixtures().join("hf-tiny").join(name);
        let model = LanguageModel::load(&dir, &Backend::Flex.device().unwrap()).unwrap();
        let reference = Reference::open(dir.join("reference.safetensors"));
        let texts = prompts(name);
        let got = lm_losses(&model, &texts, 2).unwrap();
        assert_eq!(got.len(), texts.len());
        for (k, text) in texts.iter().enumerate() {
            let ids = reference.ids(&format!("ids_{k}"));
            assert_eq!(model.encode(text).unwrap(), ids, "{name} text {k}: lm_losses would read other ids than the reference's");
            let want = mean_nll(&reference.f32(&format!("logits_{k}")).0, &ids, model.config.vocab_size);
            assert!((got[k] - want).abs() <= 1e-4, "{name} text {k}: LM loss {} against transformers' {want}", got[k]);
        }
    }
}

/// Every architecture, the untied head (LLaMA) included, and both loss paths: each text's loss
/// equals the log-softmax loss of the text alone (no padding), whatever the batch size.
#[test]
fn lm_losses_equal_each_texts_own_loss() {
    for backend in [Backend::Flex, Backend::Ndarray] {
        let device = backend.device().unwrap();
        for name in ["bloom-tiny", "llama-tiny", "gemma3-tiny", "qwen2-tiny"] {
            let model = LanguageModel::load(fixtures().join("hf-tiny").join(name), &device).unwrap();
            let mut texts = prompts(name);
            texts.push("a".into()); // one token (or two with BOS): a loss of 0 or one position
            let alone: Vec<f64> = texts
                .iter()
                .map(|t| {
                    let batch = Batch::single(&model.encode(t).unwrap());
                    let hidden = model.net.forward(&batch, None, &mut Taps::none());
                    f64::from(sequence_losses(&model.net, &batch, hidden).into_scalar::<f32>())
                })
                .collect();
            for batch_size in [1, 3, 32] {
                let got = lm_losses(&model, &texts, batch_size).unwrap();
                for (k, (g, w)) in got.iter().zip(&alone).enumerate() {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}/{backend} batch {batch_size} text {k}: {g} against {w} alone");
                }
            }
        }
    }
}
