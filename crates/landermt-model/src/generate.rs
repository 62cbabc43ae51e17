//! Decoding with a KV cache. Greedy: over a left-padded batch, the prompt is run once, then one
//! token per step for every row, feeding each row's argmax back in. Beam search: one prompt at
//! a time, its beams as the batch rows, the cache reordered to follow the surviving beams.

use std::sync::Arc;

use burn::tensor::Tensor;

use crate::model::{Batch, KvCache, Transformer};
use crate::taps::Taps;

/// Options for [`greedy`].
#[derive(Debug, Clone)]
pub struct GreedyOptions {
    pub max_new_tokens: usize,
    /// Stop a row once it produces one of these (the stop token is kept in its output).
    pub stop_ids: Vec<u32>,
    /// Stop a row at a line break once its output has text (the stop token is kept).
    pub line_breaks: Option<Arc<LineBreaks>>,
    /// Never generate an n-gram of this size twice in a row's output (0: off); see
    /// [`repeated_ngram_ends`].
    pub no_repeat_ngram: usize,
    /// Id fed for rows that have stopped while others go on.
    pub pad_id: u32,
}

/// What each token's text holds, for the stop rule "a newline ends the output once the output
/// has non-whitespace text before it": a row that starts with a blank line goes on to the
/// line after it (METHOD.md, stage 5).
#[derive(Debug, Clone, Default)]
pub struct LineBreaks {
    /// Per token id, [`TEXT`] | [`NEWLINE`] | [`ENDS_OWN_LINE`].
    flags: Vec<u8>,
}

/// The token's text has a character other than whitespace.
const TEXT: u8 = 1;
/// The token's text has a newline.
const NEWLINE: u8 = 2;
/// The token's text has a newline after a character other than whitespace.
const ENDS_OWN_LINE: u8 = 4;

impl LineBreaks {
    /// The flags of a vocabulary of `vocab` ids, from each token's text (`None`: no text).
    pub fn new(vocab: usize, text_of: impl Fn(u32) -> Option<String>) -> Self {
        let flags = (0..vocab as u32).map(|id| text_of(id).map_or(0, |s| Self::flags_of(&s))).collect();
        Self { flags }
    }

    fn flags_of(s: &str) -> u8 {
        let first_text = s.find(|c: char| !c.is_whitespace());
        let mut f = 0;
        if first_text.is_some() {
            f |= TEXT;
        }
        if s.contains('\n') {
            f |= NEWLINE;
        }
        if first_text.is_some_and(|i| s[i..].contains('\n')) {
            f |= ENDS_OWN_LINE;
        }
        f
    }

    fn flag(&self, token: u32, bit: u8) -> bool {
        self.flags.get(token as usize).is_some_and(|f| f & bit != 0)
    }

    /// Whether `token`, following `so_far`, completes the output's first non-empty line.
    pub fn ends_line(&self, so_far: &[u32], token: u32) -> bool {
        self.flag(token, NEWLINE) && (self.flag(token, ENDS_OWN_LINE) || so_far.iter().any(|&t| self.flag(t, TEXT)))
    }
}

/// The tokens that would complete an n-gram already in `so_far`: for each earlier occurrence
/// of `so_far`'s last n − 1 tokens, the token that followed it. transformers'
/// `no_repeat_ngram_size`, over the generated tokens only (ours): the prompt holds the source,
/// whose names and numbers a translation must be free to copy. `n` = 0 bans nothing.
pub fn repeated_ngram_ends(so_far: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || so_far.len() + 1 < n {
        return Vec::new();
    }
    let prefix = &so_far[so_far.len() + 1 - n..];
    so_far.windows(n).filter(|w| w[..n - 1] == *prefix).map(|w| w[n - 1]).collect()
}

/// Whether a row that has produced `so_far` stops at `token` (`stop_ids`, then `line_breaks`).
pub fn stops(stop_ids: &[u32], line_breaks: Option<&LineBreaks>, so_far: &[u32], token: u32) -> bool {
    stop_ids.contains(&token) || line_breaks.is_some_and(|l| l.ends_line(so_far, token))
}

/// Greedy continuations of `prompts` (each without padding). Returns the new tokens per row.
/// A row that stops leaves the batch (its cache rows are dropped), so a batch costs the sum of
/// its rows' lengths, not its longest row's length times its rows.
pub fn greedy(model: &Transformer, prompts: &[Vec<u32>], opts: &GreedyOptions) -> Vec<Vec<u32>> {
    // All prompts in one batch: nothing waits to join, so this is one left-padded batch.
    greedy_stream(model, prompts, prompts.len(), opts, &mut |_| {})
}

/// Greedy continuations of many `prompts` with at most `batch` rows decoding at a time
/// (continuous batching): when rows stop, the next prompts are prefilled and join the batch,
/// so each step reads the weights for a full batch instead of a batch's last stragglers.
/// Returns what [`greedy`] returns for each prompt, in order; `done(i)` is called as prompt i
/// finishes.
pub fn greedy_stream(model: &Transformer, prompts: &[Vec<u32>], batch: usize, opts: &GreedyOptions, done: &mut dyn FnMut(usize)) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); prompts.len()];
    let batch = batch.max(1);
    // Refill once a quarter of the rows are free: a prefill costs about one step.
    let refill_at = batch.div_ceil(4);
    let mut rows = Rows { cache: KvCache::new(model.config.num_layers), live: Vec::new(), feed: Vec::new() };
    let mut next = 0;
    while next < prompts.len() || !rows.live.is_empty() {
        let free = batch - rows.live.len();
        if next < prompts.len() && (rows.live.is_empty() || free >= refill_at) {
            let joining: Vec<usize> = (next..prompts.len().min(next + free)).collect();
            next += joining.len();
            let seqs: Vec<Vec<u32>> = joining.iter().map(|&p| prompts[p].clone()).collect();
            let mut fresh = Rows { cache: KvCache::new(model.config.num_layers), live: joining, feed: Vec::new() };
            fresh.step(model, &Batch::left_padded(&seqs, opts.pad_id), opts, &mut out, done);
            rows = rows.merge(fresh);
            continue;
        }
        let step = Batch { mask: vec![true; rows.feed.len()], rows: rows.feed.len(), ids: rows.feed.clone(), len: 1 };
        rows.step(model, &step, opts, &mut out, done);
    }
    out
}

/// The rows decoding in [`greedy_stream`]: their cache, prompt index and next input token.
struct Rows {
    cache: KvCache,
    live: Vec<usize>,
    feed: Vec<u32>,
}

impl Rows {
    /// Runs `batch` (one row per live prompt), appends each row's argmax to its output and
    /// drops the rows that stopped or reached `max_new_tokens`.
    fn step(&mut self, model: &Transformer, batch: &Batch, opts: &GreedyOptions, out: &mut [Vec<u32>], done: &mut dyn FnMut(usize)) {
        if opts.max_new_tokens == 0 {
            self.live.drain(..).for_each(&mut *done);
            return;
        }
        let hidden = model.forward(batch, Some(&mut self.cache), &mut Taps::none());
        let [b, t, h] = hidden.dims();
        let banned = |row: usize| repeated_ngram_ends(&out[self.live[row]], opts.no_repeat_ngram);
        let next = next_tokens(model, hidden.narrow(1, t - 1, 1).reshape([b, h]), &banned);
        let mut keep = Vec::with_capacity(self.live.len());
        for (row, (&p, &tok)) in self.live.iter().zip(&next).enumerate() {
            let stop = stops(&opts.stop_ids, opts.line_breaks.as_deref(), &out[p], tok);
            out[p].push(tok);
            if stop || out[p].len() >= opts.max_new_tokens {
                done(p);
            } else {
                keep.push(row);
            }
        }
        if keep.is_empty() {
            self.cache = KvCache::new(model.config.num_layers);
        } else if keep.len() < self.live.len() {
            self.cache.select(&keep);
        }
        self.feed = keep.iter().map(|&row| next[row]).collect();
        self.live = keep.iter().map(|&row| self.live[row]).collect();
    }

    fn merge(self, other: Rows) -> Rows {
        let (mut live, mut feed) = (self.live, self.feed);
        live.extend(other.live);
        feed.extend(other.feed);
        Rows { cache: self.cache.merge(other.cache), live, feed }
    }
}

/// Options for [`beam`].
#[derive(Debug, Clone)]
pub struct BeamOptions {
    pub beams: usize,
    /// Finished hypotheses are ranked by `log p / length^length_penalty` (transformers' rule).
    pub length_penalty: f64,
    pub max_new_tokens: usize,
    pub stop_ids: Vec<u32>,
    /// As [`GreedyOptions::line_breaks`].
    pub line_breaks: Option<Arc<LineBreaks>>,
    /// As [`GreedyOptions::no_repeat_ngram`], per beam.
    pub no_repeat_ngram: usize,
}

/// Beam search for one prompt: the best hypothesis's new tokens (its stop token kept) and its
/// summed log-probability. A candidate ending in a stop token finishes when it ranks among the
/// best `beams` candidates of its step; the search ends when `beams` hypotheses have finished
/// or at `max_new_tokens`. With one beam this is greedy decoding.
pub fn beam(model: &Transformer, prompt: &[u32], opts: &BeamOptions) -> (Vec<u32>, f64) {
    let k = opts.beams.max(1);
    let mut cache = KvCache::new(model.config.num_layers);
    let mut hidden = model.forward(&Batch::single(prompt), Some(&mut cache), &mut Taps::none());
    let mut alive: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    let mut finished: Vec<(Vec<u32>, f64, f64)> = Vec::new();
    let norm = |len: usize, score: f64| score / (len as f64).powf(opts.length_penalty);
    for _ in 0..opts.max_new_tokens {
        let [b, t, h] = hidden.dims();
        let last = hidden.narrow(1, t - 1, 1).reshape([b, 1, h]);
        let v = model.config.vocab_size;
        let mut logp: Vec<f32> = burn::tensor::activation::log_softmax(model.logits(last).reshape([b, v]), 1).into_data().try_into_vec().expect("f32");
        for (r, (tokens, _)) in alive.iter().enumerate() {
            for t in repeated_ngram_ends(tokens, opts.no_repeat_ngram) {
                logp[r * v + t as usize] = f32::NEG_INFINITY;
            }
        }
        // The 2k best (beam, token) continuations; ties go to the lower beam, then lower id.
        let mut cands: Vec<(f64, usize, u32)> = Vec::with_capacity(b * 2 * k);
        for (r, (_, score)) in alive.iter().enumerate() {
            let row = &logp[r * v..(r + 1) * v];
            let mut ids: Vec<u32> = (0..v as u32).collect();
            let take = (2 * k).min(v);
            ids.select_nth_unstable_by(take - 1, |&a, &c| row[c as usize].total_cmp(&row[a as usize]).then(a.cmp(&c)));
            cands.extend(ids[..take].iter().map(|&id| (score + row[id as usize] as f64, r, id)));
        }
        cands.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let (mut next, mut parents) = (Vec::new(), Vec::new());
        for (rank, &(score, r, id)) in cands.iter().enumerate() {
            let mut tokens = alive[r].0.clone();
            let stop = stops(&opts.stop_ids, opts.line_breaks.as_deref(), &tokens, id);
            tokens.push(id);
            if stop {
                if rank < k {
                    finished.push((tokens.clone(), score, norm(tokens.len(), score)));
                }
            } else {
                next.push((tokens, score));
                parents.push(r);
            }
            if next.len() == k {
                break;
            }
        }
        if finished.len() >= k || next.is_empty() {
            alive.clear();
            break;
        }
        cache.select(&parents);
        let ids: Vec<u32> = next.iter().map(|(t, _)| *t.last().expect("one token at least")).collect();
        let batch = Batch { mask: vec![true; ids.len()], rows: ids.len(), len: 1, ids };
        alive = next;
        hidden = model.forward(&batch, Some(&mut cache), &mut Taps::none());
    }
    finished.extend(alive.into_iter().map(|(t, s)| {
        let n = norm(t.len(), s);
        (t, s, n)
    }));
    finished.into_iter().max_by(|a, b| a.2.total_cmp(&b.2)).map(|(t, s, _)| (t, s)).unwrap_or_default()
}

/// Each row's greedy token after the hidden states `last` (`[B, h]`): from the model's screened
/// head where it has one ([`crate::screen`]), else from the f32 logits.
fn next_tokens(model: &Transformer, last: Tensor<2>, banned: &dyn Fn(usize) -> Vec<u32>) -> Vec<u32> {
    if let Some(screen) = &model.screen {
        let hidden: Vec<f32> = last.clone().into_data().try_into_vec::<f32>().expect("f32 hidden states");
        if let Some(next) = screen.argmax(&model.embed_tokens.val(), &hidden, banned) {
            return next;
        }
    }
    let [b, h] = last.dims();
    argmax_last(model.logits(last.reshape([b, 1, h])), banned)
}

/// Argmax over the vocabulary of `[B, 1, V]` logits, ties to the lowest id (as torch.argmax),
/// leaving out each row's `banned(row)` tokens.
fn argmax_last(logits: Tensor<3>, banned: &dyn Fn(usize) -> Vec<u32>) -> Vec<u32> {
    let [b, _, v] = logits.dims();
    let mut data: Vec<f32> = logits.reshape([b, v]).into_data().try_into_vec::<f32>().expect("f32 logits");
    data.chunks_exact_mut(v)
        .enumerate()
        .map(|(r, row)| {
            for t in banned(r) {
                row[t as usize] = f32::NEG_INFINITY;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of hand-written token texts.
    fn breaks(texts: &[&str]) -> LineBreaks {
        LineBreaks::new(texts.len(), |id| Some(texts[id as usize].to_string()))
    }

    #[test]
    fn a_newline_ends_the_output_only_after_text() {
        // 0 "\n", 1 " ", 2 "Bonjour", 3 ".\n", 4 "\n\n", 5 "\nfin", 6 " \t"
        let b = breaks(&["\n", " ", "Bonjour", ".\n", "\n\n", "\nfin", " \t"]);
        assert!(!b.ends_line(&[], 0), "a leading newline is not the end");
        assert!(!b.ends_line(&[0, 1, 6], 4), "nor are blank lines and spaces before any text");
        assert!(b.ends_line(&[0, 2], 0), "a newline after text is");
        assert!(b.ends_line(&[], 3), "a token with text then a newline ends its own line");
        assert!(!b.ends_line(&[], 5), "a newline then text starts the first line");
        assert!(b.ends_line(&[5], 0), "which the next newline ends");
        assert!(!b.ends_line(&[2], 2), "text alone never ends a line");
    }

    #[test]
    fn repeated_ngram_ends_are_the_tokens_that_followed_the_last_n_minus_1() {
        // 5 6 7 5 6 | next: with n = 3 the trigram (5 6 7) exists, so 7 is banned after "5 6".
        assert_eq!(repeated_ngram_ends(&[5, 6, 7, 5, 6], 3), [7]);
        assert_eq!(repeated_ngram_ends(&[5, 6, 7, 5, 6], 2), [7], "bigram (6 7)");
        assert_eq!(repeated_ngram_ends(&[5, 6, 5, 6, 5, 8, 5], 2), [6, 6, 8], "every token that followed 5");
        assert_eq!(repeated_ngram_ends(&[5, 6, 7], 1), [5, 6, 7], "n = 1 bans every token so far");
        assert!(repeated_ngram_ends(&[5, 6, 7, 5, 6], 0).is_empty(), "0 is off");
        assert!(repeated_ngram_ends(&[5], 3).is_empty(), "too short to hold an (n − 1)-gram");
    }
}
