//! The training loss: mean next-token cross-entropy over the target (and EOS) tokens of a
//! left-padded batch. Logits are computed only at the positions that predict them, since the
//! vocabulary-wide head is the largest matrix of a small model.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use landermt_model::{Batch, Transformer};

use crate::data::Example;

/// The positions (flattened `row·T + j`) that predict a target token, and those tokens.
pub fn target_positions(batch: &Batch, examples: &[&Example]) -> (Vec<i64>, Vec<i64>) {
    let t = batch.len;
    let (mut at, mut labels) = (Vec::new(), Vec::new());
    for (r, ex) in examples.iter().enumerate() {
        // Row r holds ex.ids at its end; target token k sits at column t − target_len + k and is
        // predicted by the column before it.
        for col in t - ex.target_len..t {
            at.push((r * t + col - 1) as i64);
            labels.push(batch.ids[r * t + col] as i64);
        }
    }
    (at, labels)
}

/// The final hidden states `[N, H]` of the positions that predict a target token, and those
/// tokens.
fn picked(batch: &Batch, examples: &[&Example], hidden: Tensor<3>) -> (Tensor<2>, Vec<i64>) {
    let [b, t, h] = hidden.dims();
    let (at, labels) = target_positions(batch, examples);
    let n = at.len();
    let at = Tensor::<1, Int>::from_data(TensorData::new(at, [n]), &hidden.device());
    (hidden.reshape([b * t, h]).select(0, at), labels)
}

/// Mean cross-entropy of the target tokens given the final hidden states `[B, T, H]`.
pub fn target_loss(net: &Transformer, batch: &Batch, examples: &[&Example], hidden: Tensor<3>) -> Tensor<1> {
    let (picked, labels) = picked(batch, examples, hidden);
    let [n, h] = picked.dims();
    let device = picked.device();
    let logp = log_softmax(net.logits(picked.reshape([1, n, h])).reshape([n, net.config.vocab_size]), 1);
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [n, 1]), &device);
    logp.gather(1, labels).mean().neg()
}

/// For `backward()`: a scalar whose gradients are those of [`target_loss`], and the loss's value.
/// The gradient at the vocabulary-wide logits is formed outside the autodiff graph (see
/// [`landermt_model::loss::weighted_nll_for_backward`]).
pub fn target_loss_for_backward(net: &Transformer, batch: &Batch, examples: &[&Example], hidden: Tensor<3>) -> (Tensor<1>, f64) {
    let (picked, labels) = picked(batch, examples, hidden);
    let n = labels.len();
    let (surrogate, value) = landermt_model::loss::weighted_nll_for_backward(net, picked, &labels, &vec![1.0 / n as f32; n]);
    (surrogate, value as f64)
}
