//! `route.start = "identity"`: on every fixture architecture the routed model at step 0 is the
//! pretrained model (logits within 1e-5), while the paper's start is not; with λ = 1 it is the
//! paper's eq. 5.

use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use landermt_model::nn::{CarMode, Partition, Router, Start};
use landermt_model::{Batch, LanguageModel, Taps};

fn logits(model: &LanguageModel, ids: &[u32]) -> Vec<f32> {
    let net = &model.net;
    net.logits(net.forward(&Batch::single(ids), None, &mut Taps::none())).into_data().try_into_vec().unwrap()
}

/// A hand-made partition of `units`: G every third unit and the rest split into S and O, Ḡ
/// positive and uneven so that Taylor CAR varies by token.
fn partition(units: usize) -> Partition {
    let (mut general, mut specific, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..units {
        match u % 3 {
            0 => general.push(u),
            1 => specific.push(u),
            _ => other.push(u),
        }
    }
    Partition { general, specific, other, gbar: (0..units).map(|u| 0.5 + (u % 7) as f64 * 0.1).collect(), constant: 0.6 }
}

/// `model` with routers of `start` on its last two blocks.
fn routed(model: &LanguageModel, mode: CarMode, start: Start) -> LanguageModel {
    let mut m = model.clone();
    let (n, hidden, units) = (m.config.num_layers, m.config.hidden_size, m.config.intermediate_size);
    let device = m.net.device();
    for layer in n - 2..n {
        m.net.layers[layer].mlp.router = Some(Router::with_start(mode, start, &partition(units), hidden, &device));
    }
    m
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_identity_start_is_the_pretrained_model_on_every_fixture_and_lambda_one_is_eq_5() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf-tiny");
    for name in ["llama-tiny", "bloom-tiny", "gemma3-tiny", "qwen2-tiny"] {
        let model = LanguageModel::load(root.join(name), &Device::flex()).unwrap();
        let ids = model.encode("The cat sleeps on the sofa since this morning.").unwrap();
        let base = logits(&model, &ids);
        for mode in [CarMode::Taylor, CarMode::Static, CarMode::Learned] {
            let identity = logits(&routed(&model, mode, Start::Identity), &ids);
            assert!(worst(&base, &identity) <= 1e-5, "{name} {mode:?}: the identity start moves the logits by {}", worst(&base, &identity));
            let paper = routed(&model, mode, Start::Paper);
            assert!(worst(&base, &logits(&paper, &ids)) > 1e-3, "{name} {mode:?}: the paper's start should change the model");
            // λ = 1: the paper's eq. 5.
            let mut one = routed(&model, mode, Start::Identity);
            for block in &mut one.net.layers {
                if let Some(r) = block.mlp.router.as_mut() {
                    r.lambda = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![1f32], [1]), &model.net.device())));
                }
            }
            let (a, b) = (logits(&one, &ids), logits(&paper, &ids));
            assert!(worst(&a, &b) <= 1e-4 * (1.0 + b.iter().fold(0f32, |m, x| m.max(x.abs()))), "{name} {mode:?}: λ = 1 differs from eq. 5 by {}", worst(&a, &b));
        }
    }
}
