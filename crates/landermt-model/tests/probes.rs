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
    let device = landermt_model::Backend::Wgpu.device().unwrap_or_else(|e| panic!("{e}")).autodiff();
    check_site_on(device.clone(), "llama-tiny", 1, Site::FfnAct, 176);
    check_site_on(device, "bloom-tiny", 2, Site::Block, 64);
}
