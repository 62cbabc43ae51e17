//! Gradient probes: a zero leaf added at a tap site reads ∂L/∂h there (Burn keeps no
//! gradients of intermediate tensors). Checked against central finite differences of the loss,
//! an independent estimate that needs no autodiff.

mod common;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::fixtures;
use landermt_model::{Batch, LanguageModel, Site, Taps};

/// Mean next-token cross-entropy over the T−1 predicted positions (transformers' `labels=` loss).
fn loss(model: &LanguageModel, ids: &[u32], taps: &mut Taps) -> Tensor<1> {
    let logits = model.net.logits(model.net.forward(&Batch::single(ids), None, taps));
    let [_, t, v] = logits.dims();
    let logp = log_softmax(logits.reshape([t, v]).narrow(0, 0, t - 1), 1);
    let targets: Vec<i64> = ids[1..].iter().map(|&i| i as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [t - 1]), &logp.device()).reshape([t - 1, 1]);
    logp.gather(1, targets).mean().neg()
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().try_into_vec::<f32>().unwrap()[0] as f64
}

fn check_site(model_name: &str, layer: usize, site: Site, width: usize) {
    check_site_on(Device::flex().autodiff(), model_name, layer, site, width);
}

fn check_site_on(device: Device, model_name: &str, layer: usize, site: Site, width: usize) {
    let model = LanguageModel::load(fixtures().join("hf-tiny").join(model_name), &device).unwrap();
    let ids = model.tokenizer.encode("Le chat dort sur le canapé.", false).unwrap();
    let t = ids.len();

    let probe = Tensor::<3>::zeros([1, t, width], &device).require_grad();
    let mut taps = Taps::none().with_probe(layer, site, probe.clone());
    let grads = loss(&model, &ids, &mut taps).backward();
    let grad: Vec<f32> = probe.grad(&grads).expect("probe has a gradient").into_data().try_into_vec().unwrap();
    assert!(grad.iter().any(|&g| g != 0.0), "{model_name} {site:?}: gradient is all zeros");

    // The largest-gradient units of a few positions, perturbed one at a time by ±δ.
    let delta = 1e-2f32;
    for pos in [0, t / 2, t - 2] {
        let row = &grad[pos * width..(pos + 1) * width];
        let unit = (0..width).max_by(|&a, &b| row[a].abs().total_cmp(&row[b].abs())).unwrap();
        let at = |d: f32| {
            let mut data = vec![0f32; t * width];
            data[pos * width + unit] = d;
            let bump = Tensor::<3>::from_data(TensorData::new(data, [1, t, width]), &device);
            scalar(loss(&model, &ids, &mut Taps::none().with_probe(layer, site, bump)))
        };
        let fd = (at(delta) - at(-delta)) / (2.0 * delta as f64);
        let g = row[unit] as f64;
        assert!((fd - g).abs() <= 2e-3 + 2e-2 * g.abs(), "{model_name} {site:?} layer {layer} pos {pos} unit {unit}: probe {g}, finite difference {fd}");
    }
}

#[test]
fn ffn_activation_probe_gives_dl_dh_llama() {
    check_site("llama-tiny", 1, Site::FfnAct, 176);
}

#[test]
fn block_output_and_attention_probes_give_dl_dh_bloom() {
    check_site("bloom-tiny", 2, Site::Block, 64);
    check_site("bloom-tiny", 0, Site::AttnV, 64);
    check_site("bloom-tiny", 3, Site::FfnAct, 256);
}

// On wgpu, the same finite-difference check: the probe's gradient must be ∂L/∂h there too.
#[test]
fn probes_give_dl_dh_on_wgpu() {
    let Some(device) = landermt_model::Backend::Wgpu.test_device("probes_give_dl_dh_on_wgpu") else { return };
    let device = device.autodiff();
    check_site_on(device.clone(), "llama-tiny", 1, Site::FfnAct, 176);
    check_site_on(device, "bloom-tiny", 2, Site::Block, 64);
}

/// `summed_sequence_losses_for_backward` forms the gradient at the logits by hand; autodiff of
/// the plain log-softmax loss (`sequence_losses`) is the reference, on a left-padded batch. With
/// a frozen model (stage 2) the probe's gradient is compared, with a trainable one (full
/// fine-tuning) the LM head's own gradient, tied (gemma3-tiny) and untied (llama-tiny).
fn check_fused_loss(model_name: &str, width: usize) {
    use burn::module::Module;
    use landermt_model::loss::{sequence_losses, summed_sequence_losses_for_backward};
    let device = Device::flex().autodiff();
    let model = LanguageModel::load(fixtures().join("hf-tiny").join(model_name), &device).unwrap();
    let seqs: Vec<Vec<u32>> = ["Le chat dort sur le canapé.", "Bonjour"].iter().map(|s| model.tokenizer.encode(s, false).unwrap()).collect();
    let batch = Batch::left_padded(&seqs, 0);
    let max_diff = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let to_vec = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().unwrap();

    // Frozen: the probe's gradient and the loss.
    let frozen = model.net.clone().no_grad();
    let probe_grad = |fused: bool| {
        let probe = Tensor::<3>::zeros([2, batch.len, width], &device).require_grad();
        let mut taps = Taps::none().with_probe(1, Site::FfnAct, probe.clone());
        let hidden = frozen.forward(&batch, None, &mut taps);
        let (loss, value) = if fused {
            summed_sequence_losses_for_backward(&frozen, &batch, hidden)
        } else {
            let l = sequence_losses(&frozen, &batch, hidden).sum();
            let v = scalar(l.clone()) as f32;
            (l, v)
        };
        (to_vec(probe.grad(&loss.backward()).unwrap()), value)
    };
    let ((fused, fused_value), (plain, plain_value)) = (probe_grad(true), probe_grad(false));
    let scale = plain.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0, "{model_name}: the reference gradient is all zeros");
    assert!(max_diff(fused, plain) <= 1e-5 * scale.max(1.0), "{model_name}: probe gradients differ");
    assert!((fused_value - plain_value).abs() <= 1e-5 * plain_value.abs(), "{model_name}: loss {fused_value} against {plain_value}");

    // Trainable: the head's gradient.
    let head_grad = |fused: bool| {
        let hidden = model.net.forward(&batch, None, &mut Taps::none());
        let loss = if fused { summed_sequence_losses_for_backward(&model.net, &batch, hidden).0 } else { sequence_losses(&model.net, &batch, hidden).sum() };
        let grads = loss.backward();
        let head = model.net.lm_head.as_ref().unwrap_or(&model.net.embed_tokens).val();
        head.grad(&grads).expect("the head trains").into_data().try_into_vec::<f32>().unwrap()
    };
    let (fused, plain) = (head_grad(true), head_grad(false));
    let scale = plain.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0 && max_diff(fused, plain) <= 1e-5 * scale.max(1.0), "{model_name}: head gradients differ");
}

#[test]
fn fused_loss_gradients_equal_autodiff_of_log_softmax_untied_head() {
    check_fused_loss("llama-tiny", 176);
}

#[test]
fn fused_loss_gradients_equal_autodiff_of_log_softmax_tied_head() {
    check_fused_loss("gemma3-tiny", 128);
}
