//! The Taylor awareness of neurons for one language (METHOD.md eq. 2): `Φ = |∂L/∂h · h|` at
//! every scored site, read through zero probe leaves, with L the sentence's mean next-token
//! cross-entropy.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};
use landermt_model::{Batch, LanguageModel, Site, Taps};

/// The sites whose units are scored: each attention projection, the FFN's intermediate units
/// (after the activation) and the FFN's down projection.
pub const SCORED: [Site; 6] = [Site::AttnQ, Site::AttnK, Site::AttnV, Site::AttnO, Site::FfnAct, Site::FfnDown];

/// Scores of one language, summed over its sentences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Awareness {
    /// Sentences scored (those of one token are skipped: they predict nothing).
    pub sentences: usize,
    /// Tokens over the scored sentences.
    pub positions: usize,
    /// Per (layer, site) and unit: Σ over sentences of the token-mean of `|∂L/∂h · h|` (`S_ℓ`).
    pub s: BTreeMap<(usize, Site), Vec<f64>>,
    /// Per (layer, site) and unit: Σ over sentences and tokens of `|∂L/∂h|`, divided by
    /// `positions` (`G_ℓ`).
    pub g: BTreeMap<(usize, Site), Vec<f64>>,
}

/// Scores the token sequences of one language, `batch_size` sequences per forward and backward
/// pass (left-padded; padding carries no weight). `model` must be on an autodiff device; its
/// parameters should not require gradients (see [`frozen`]). `progress` gets the number of
/// sequences done after each batch.
pub fn awareness(model: &LanguageModel, sentences: &[Vec<u32>], batch_size: usize, progress: &dyn Fn(usize)) -> Awareness {
    let mut out = Awareness::default();
    let skipped = sentences.iter().filter(|s| s.len() < 2).count();
    if skipped > 0 {
        tracing::warn!(skipped, "sentences of fewer than two tokens predict nothing and are skipped");
        progress(skipped);
    }
    // Similar lengths together waste less on padding; the sums do not depend on the order.
    let mut order: Vec<&Vec<u32>> = sentences.iter().filter(|s| s.len() >= 2).collect();
    order.sort_by_key(|s| s.len());
    let mut g_sum: BTreeMap<(usize, Site), Vec<f64>> = BTreeMap::new();
    for chunk in order.chunks(batch_size.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|s| s.to_vec()).collect();
        accumulate(model, &seqs, &mut out.s, &mut g_sum);
        out.sentences += seqs.len();
        out.positions += seqs.iter().map(Vec::len).sum::<usize>();
        progress(chunk.len());
    }
    let positions = out.positions.max(1) as f64;
    out.g = g_sum.into_iter().map(|(k, v)| (k, v.into_iter().map(|x| x / positions).collect())).collect();
    out
}

/// The model with no parameter requiring a gradient: backward then computes only what the
/// probes need.
pub fn frozen(mut model: LanguageModel) -> LanguageModel {
    use burn::module::Module;
    model.net = model.net.no_grad();
    model
}

/// One left-padded batch: forward with probes at every scored site, backward of Σ_rows L_row
/// (rows are independent, so each row's probe gradient is its own ∂L/∂h), then the weighted
/// sums of `|g·h|` and `|g|` over rows and tokens, added to the accumulators on the host.
fn accumulate(model: &LanguageModel, seqs: &[Vec<u32>], s: &mut BTreeMap<(usize, Site), Vec<f64>>, g: &mut BTreeMap<(usize, Site), Vec<f64>>) {
    let device = model.net.device();
    let batch = Batch::left_padded(seqs, model.config.pad_token_id.unwrap_or(0));
    let (b, t) = (batch.rows, batch.len);
    let mut taps = Taps::recording(SCORED).probing(SCORED);
    let hidden = model.net.forward(&batch, None, &mut taps);

    // L = Σ_rows L_row: rows are independent, so each row's probe gradient is its own ∂L_row/∂h.
    let grads = landermt_model::loss::summed_sequence_losses_for_backward(&model.net, &batch, hidden).0.backward();

    // Token weights: 1/T_row on the row's real tokens (the per-sentence token mean), and a mask.
    let mut token_w = vec![0f32; b * t];
    let mut mask = vec![0f32; b * t];
    for (r, seq) in seqs.iter().enumerate() {
        for j in t - seq.len()..t {
            token_w[r * t + j] = 1.0 / seq.len() as f32;
            mask[r * t + j] = 1.0;
        }
    }
    let plain = device.clone().inner();
    let token_w = Tensor::<3>::from_data(TensorData::new(token_w, [b, t, 1]), &plain);
    let mask = Tensor::<3>::from_data(TensorData::new(mask, [b, t, 1]), &plain);
    let host = |x: Tensor<3>| -> Vec<f32> { x.sum_dim(0).sum_dim(1).into_data().try_into_vec().expect("f32 scores") };
    for (&key, probe) in taps.probes() {
        let grad = probe.grad(&grads).expect("every probe lies on the loss's path");
        let h = taps.recorded[&key].clone().inner();
        let taylor = host(grad.clone().mul(h).abs().mul(token_w.clone()));
        let size = host(grad.abs().mul(mask.clone()));
        add(s.entry(key).or_default(), &taylor);
        add(g.entry(key).or_default(), &size);
    }
}

fn add(acc: &mut Vec<f64>, x: &[f32]) {
    acc.resize(x.len(), 0.0);
    acc.iter_mut().zip(x).for_each(|(a, &v)| *a += v as f64);
}
