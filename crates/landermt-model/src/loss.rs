//! Next-token cross-entropy per sequence of a left-padded batch: the mean over the sequence's
//! T−1 predicted positions of −log p(next token), as Hugging Face's `labels=` loss computes
//! it for one unpadded sequence.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{Batch, Transformer};

/// `[B]`: each row's mean next-token loss, from the final hidden states `[B, T, H]` of `batch`.
/// Rows of fewer than two tokens predict nothing and get 0.
pub fn sequence_losses(net: &Transformer, batch: &Batch, hidden: Tensor<3>) -> Tensor<1> {
    let t = batch.len;
    if t < 2 {
        return Tensor::zeros([batch.rows], &hidden.device());
    }
    sequence_losses_of_logits(batch, net.logits(hidden.narrow(1, 0, t - 1)))
}

/// As [`sequence_losses`], from the logits `[B, T−1, V]` of every position but the last (for a
/// caller that needs the logits too).
pub fn sequence_losses_of_logits(batch: &Batch, logits: Tensor<3>) -> Tensor<1> {
    let (b, t) = (batch.rows, batch.len);
    let device = logits.device();
    if t < 2 {
        return Tensor::zeros([b], &device);
    }
    // With left padding, position j of a row predicts j+1 exactly when j is a real token and
    // j < T−1; each row's predicted positions weigh 1/(n−1).
    let mut weights = vec![0f32; b * (t - 1)];
    for r in 0..b {
        let real = batch.mask_row(r).iter().filter(|&&m| m).count();
        for j in t - real..t - 1 {
            weights[r * (t - 1) + j] = 1.0 / (real - 1) as f32;
        }
    }
    let targets: Vec<i64> = (0..b).flat_map(|r| batch.ids[r * t + 1..(r + 1) * t].iter().map(|&i| i as i64)).collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, t - 1, 1]), &device);
    let logp = log_softmax(logits, 2).gather(2, targets);
    logp.mul(weights).sum_dim(1).reshape([b]).neg()
}
