//! Next-token cross-entropy per sequence of a left-padded batch: the mean over the sequence's
//! T−1 predicted positions of −log p(next token), as Hugging Face's `labels=` loss computes
//! it for one unpadded sequence.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

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
    let (targets, weights) = next_tokens(batch);
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, t - 1, 1]), &device);
    let logp = log_softmax(logits, 2).gather(2, targets);
    logp.mul(weights).sum_dim(1).reshape([b]).neg()
}

/// The next token of every position but the last (`[B·(T−1)]`, row-major), and its weight in
/// its row's mean: with left padding, position j of a row predicts j+1 exactly when j is a real
/// token and j < T−1; each row's predicted positions weigh 1/(n−1).
fn next_tokens(batch: &Batch) -> (Vec<i64>, Vec<f32>) {
    let (b, t) = (batch.rows, batch.len);
    let mut weights = vec![0f32; b * (t - 1)];
    for r in 0..b {
        let real = batch.mask_row(r).iter().filter(|&&m| m).count();
        for j in t - real..t - 1 {
            weights[r * (t - 1) + j] = 1.0 / (real - 1) as f32;
        }
    }
    let targets = (0..b).flat_map(|r| batch.ids[r * t + 1..(r + 1) * t].iter().map(|&i| i as i64)).collect();
    (targets, weights)
}

/// For `backward()`: a scalar whose gradients are those of Σ_rows [`sequence_losses`], and that
/// sum's value. See [`weighted_nll_for_backward`].
pub fn summed_sequence_losses_for_backward(net: &Transformer, batch: &Batch, hidden: Tensor<3>) -> (Tensor<1>, f32) {
    let [b, t, h] = hidden.dims();
    if t < 2 {
        return (Tensor::zeros([1], &hidden.device()), 0.0);
    }
    let (targets, weights) = next_tokens(batch);
    weighted_nll_for_backward(net, hidden.narrow(1, 0, t - 1).reshape([b * (t - 1), h]), &targets, &weights)
}

/// For `backward()`: a scalar whose gradients are those of L = −Σ_i w_i · log p(target_i | h_i)
/// over the rows of `hidden` `[N, H]`, and L's value.
///
/// The gradient at the logits, w·(softmax − onehot), is computed outside the autodiff graph, in
/// place, and carried back as Σ h·(G·Wᵀ) where the LM head is frozen (Σ logits·G where it
/// trains). Autodiff of log-softmax and gather would keep several vocabulary-wide tensors,
/// each of N × 262k floats for Gemma (half a gigabyte at N = 512), freshly allocated and
/// zeroed by the kernel page by page: this allocates one (the logits, overwritten by their
/// gradient on flex; see [`crate::xent`]).
pub fn weighted_nll_for_backward(net: &Transformer, hidden: Tensor<2>, targets: &[i64], weights: &[f32]) -> (Tensor<1>, f32) {
    let [n, h] = hidden.dims();
    let device = hidden.device();
    let v = net.config.vocab_size;
    let head = net.lm_head.as_ref().unwrap_or(&net.embed_tokens).val();
    let head_trains = head.is_require_grad();
    let input = if head_trains { hidden.clone() } else { hidden.clone().detach() };
    let logits = if head_trains { net.logits(input.reshape([1, n, h])).reshape([n, v]) } else { frozen_head_logits(net, input) };
    // Only a trained head needs the logits again; otherwise `x` becomes their buffer's sole
    // owner and the host pass overwrites it instead of copying it.
    let x = logits.clone().detach();
    let logits = head_trains.then_some(logits);
    let (grad, loss) = if device == Device::flex() { softmax_xent_on_host(x, targets, weights) } else { softmax_xent_by_ops(x, targets, weights) };
    let surrogate = if let Some(logits) = logits {
        logits.mul(grad).sum()
    } else {
        // logits = h·Wᵀ for a tied head (W = E, `[V, H]`), h·W for an untied one (`[H, V]`).
        let dh = match &net.lm_head {
            Some(_) => grad.matmul(head.detach().transpose()),
            None => grad.matmul(head.detach()),
        };
        hidden.mul(dh).sum()
    };
    (surrogate, loss)
}

/// `[N, V]` logits of `x` `[N, H]` under a head that does not train, in one product: for a tied
/// head h·Eᵀ, which the GEMM reads through Eᵀ's strides, so the result is row-major at once
/// (`Transformer::logits` computes (E·hᵀ)ᵀ and transposes it afterwards).
fn frozen_head_logits(net: &Transformer, x: Tensor<2>) -> Tensor<2> {
    match &net.lm_head {
        None => x.matmul(net.embed_tokens.val().detach().transpose()),
        Some(w) => x.matmul(w.val().detach()),
    }
}

/// The gradient at `x` (`[N, V]`) of −Σ_i w_i · log softmax(x_i)[target_i], and that value, in
/// one fused pass over the logits' own buffer (flex keeps tensors in host memory; when `x` is
/// the buffer's only owner, no copy is made).
fn softmax_xent_on_host(x: Tensor<2>, targets: &[i64], weights: &[f32]) -> (Tensor<2>, f32) {
    let ([n, v], device) = (x.dims(), x.device());
    let mut data: Vec<f32> = x.into_data().try_into_vec().expect("logits are f32");
    let loss = crate::xent::softmax_xent_in_place(&mut data, v, targets, weights);
    (Tensor::from_data(TensorData::new(data, [n, v]), &device), loss as f32)
}

/// As [`softmax_xent_on_host`], with tensor ops, for devices that do not keep tensors in host
/// memory.
fn softmax_xent_by_ops(x: Tensor<2>, targets: &[i64], weights: &[f32]) -> (Tensor<2>, f32) {
    let (n, device) = (targets.len(), x.device());
    let w = Tensor::<2>::from_data(TensorData::new(weights.to_vec(), [n, 1]), &device);
    let at = Tensor::<2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &device);
    // log p(target) = x_target − max − log Σ exp(x − max), from the same pass as softmax.
    let max = x.clone().max_dim(1);
    let exp = x.clone().sub(max.clone()).exp();
    let sum = exp.clone().sum_dim(1);
    let log_p = x.gather(1, at.clone()).sub(max).sub(sum.clone().log());
    let loss = log_p.mul(w.clone()).sum().neg().into_scalar();
    // ∂L/∂x = w·exp/Σexp − w·onehot(target).
    (exp.mul(w.clone().div(sum)).scatter(1, at, w.neg(), IndexingUpdateOp::Add), loss)
}

/// Each text's mean next-token loss under `model` (its usual special tokens, no prompt), in
/// left-padded batches of `batch_size`: the held-out LM loss of forgetting.
///
/// Texts are batched in order of length (less padding), and only the positions that predict a
/// real token go through the head: the vocabulary-wide logits of padding were most of the
/// work (as `sequence_losses`, these are 0 for a text of fewer than two tokens).
pub fn lm_losses(model: &crate::LanguageModel, texts: &[String], batch_size: usize) -> crate::Result<Vec<f64>> {
    let pad = model.config.pad_token_id.unwrap_or(0);
    let ids = texts.iter().map(|s| model.encode(s)).collect::<crate::Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![0f64; texts.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let batch = Batch::left_padded(&seqs, pad);
        let hidden = model.net.forward(&batch, None, &mut crate::Taps::none());
        for (&i, loss) in chunk.iter().zip(real_position_losses(&model.net, &batch, hidden)) {
            out[i] = loss;
        }
    }
    Ok(out)
}

/// Each row's mean of −log p(next token) over its real positions, from the final hidden states
/// `[B, T, H]` of `batch`, in f64; the logits of padded positions are never computed.
fn real_position_losses(net: &Transformer, batch: &Batch, hidden: Tensor<3>) -> Vec<f64> {
    let [b, t, h] = hidden.dims();
    if t < 2 {
        return vec![0.0; b];
    }
    let (targets, weights) = next_tokens(batch);
    // Row-major, so each row's predicting positions are one run of `counts[r]`.
    let keep: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    let mut counts = vec![0usize; b];
    keep.iter().for_each(|&i| counts[i / (t - 1)] += 1);
    if keep.is_empty() {
        return vec![0.0; b];
    }
    let device = hidden.device();
    let at = Tensor::<1, Int>::from_data(TensorData::new(keep.iter().map(|&i| i as i64).collect(), [keep.len()]), &device);
    let x = hidden.narrow(1, 0, t - 1).reshape([b * (t - 1), h]).select(0, at);
    let logits = frozen_head_logits(net, x);
    let targets: Vec<i64> = keep.iter().map(|&i| targets[i]).collect();
    let nll = negative_log_likelihoods(logits, &targets, &counts);
    nll.iter().zip(&counts).map(|(&sum, &n)| if n == 0 { 0.0 } else { sum / n as f64 }).collect()
}

/// Σ −log softmax(logits_i)[targets_i] over each run of `counts[r]` consecutive rows of
/// `logits` `[N, V]`: on flex in one fused host pass per row ([`crate::xent`]), elsewhere by ops.
fn negative_log_likelihoods(logits: Tensor<2>, targets: &[i64], counts: &[usize]) -> Vec<f64> {
    let [n, v] = logits.dims();
    if logits.device() == Device::flex() {
        let mut data: Vec<f32> = logits.into_data().try_into_vec().expect("logits are f32");
        let mut first = 0;
        return counts
            .iter()
            .map(|&c| {
                let rows = first..first + c;
                first += c;
                crate::xent::softmax_xent_in_place(&mut data[rows.start * v..rows.end * v], v, &targets[rows.clone()], &vec![1.0; c])
            })
            .collect();
    }
    let at = Tensor::<2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &logits.device());
    let log_p: Vec<f32> = log_softmax(logits, 1).gather(1, at).into_data().try_into_vec().expect("f32");
    let mut first = 0;
    counts
        .iter()
        .map(|&c| {
            first += c;
            -log_p[first - c..first].iter().map(|&x| f64::from(x)).sum::<f64>()
        })
        .collect()
}
