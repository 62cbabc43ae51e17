//! Greedy decoding with a KV cache over a left-padded batch: the prompt is run once, then one
//! token per step for every row, feeding each row's argmax back in.

use burn::tensor::Tensor;

use crate::model::{Batch, KvCache, Transformer};
use crate::taps::Taps;

/// Options for [`greedy`].
#[derive(Debug, Clone)]
pub struct GreedyOptions {
    pub max_new_tokens: usize,
    /// Stop a row once it produces one of these (the stop token is kept in its output).
    pub stop_ids: Vec<u32>,
    /// Id fed for rows that have stopped while others go on.
    pub pad_id: u32,
}

/// Greedy continuations of `prompts` (each without padding). Returns the new tokens per row.
pub fn greedy(model: &Transformer, prompts: &[Vec<u32>], opts: &GreedyOptions) -> Vec<Vec<u32>> {
    let rows = prompts.len();
    let mut out = vec![Vec::new(); rows];
    if rows == 0 || opts.max_new_tokens == 0 {
        return out;
    }
    let mut cache = KvCache::new(model.config.num_layers);
    let mut batch = Batch::left_padded(prompts, opts.pad_id);
    let mut done = vec![false; rows];
    for _ in 0..opts.max_new_tokens {
        let hidden = model.forward(&batch, Some(&mut cache), &mut Taps::none());
        let [b, t, h] = hidden.dims();
        let last = hidden.narrow(1, t - 1, 1).reshape([b, 1, h]);
        let next = argmax_last(model.logits(last));
        let mut ids = Vec::with_capacity(rows);
        let mut mask = Vec::with_capacity(rows);
        for (r, &tok) in next.iter().enumerate() {
            if done[r] {
                ids.push(opts.pad_id);
                mask.push(false);
                continue;
            }
            out[r].push(tok);
            done[r] = opts.stop_ids.contains(&tok);
            ids.push(tok);
            mask.push(true);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        batch = Batch { ids, mask, rows, len: 1 };
    }
    out
}

/// Argmax over the vocabulary of `[B, 1, V]` logits, ties to the lowest id (as torch.argmax).
fn argmax_last(logits: Tensor<3>) -> Vec<u32> {
    let [b, _, v] = logits.dims();
    let data: Vec<f32> = logits.reshape([b, v]).into_data().try_into_vec::<f32>().expect("f32 logits");
    data.chunks_exact(v)
        .map(|row| {
            let mut best = 0;
            for (i, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}
