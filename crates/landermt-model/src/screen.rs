//! Greedy decoding's head at half the bytes, with the f32 head's argmax: the screened head.
//!
//! A decoding step of up to 16 rows on a two-core machine reads every weight once, and the
//! tied head `E · h` (Gemma 3's E is 262,144 × 640 f32, 671 MB) is two thirds of those bytes.
//! Greedy decoding needs only each row's argmax, so the head is read from a bf16 copy Ê of E
//! instead, and the argmax is recovered exactly:
//! - `approx_i = Ê_i · h`, the f32 sum of the exact bf16 values (`skinny::product_bf16`);
//! - `exact_i`, the f32 head's logit: the f32 fused multiply-add chain over the hidden size in
//!   order, as `skinny`'s f32 kernels compute every output;
//! - `|approx_i − exact_i| ≤ b_i = ‖h‖₂ · s_i`, with the row's slack
//!   `s_i = ‖E_i − Ê_i‖₂ (1 + γ) + 2γ ‖Ê_i‖₂`: Cauchy–Schwarz on the rounding of E, the
//!   textbook bound `γ = d·u / (1 − d·u)`, `u = 2⁻²⁴`, on the rounding of a d-term f32 sum in
//!   any order (both sums), and `‖E_i‖ ≤ ‖Ê_i‖ + ‖E_i − Ê_i‖`;
//! - so every maximum of `exact` lies among the candidates
//!   `approx_i + b_i ≥ max_j (approx_j − b_j)`, whose exact logits are then computed from E's
//!   own rows.
//!
//! On Gemma 3 270M a row has one to three candidates. The argmax, ties to the lowest id, is the
//! one the f32 head gives wherever `skinny`'s f32 kernel computes that head (a BLAS is active,
//! 2 to 32 rows): the same sums, bit for bit. One-row steps are otherwise `sgemv`'s, and the
//! pure-Rust GEMM's sums come in another order; there the two heads can differ only between
//! logits within f32 rounding of each other.
//!
//! Built by [`crate::LanguageModel::into_decoding`] for tied f32 heads on flex, and only
//! valid while the embedding does not change (a decoding model's weights are final): each step
//! reads eight rows of E again beside the candidates', and a screen whose E has changed since
//! leaves the step to the f32 logits.
//! `LANDERMT_SCREEN=0` leaves it out, to compare the two heads.

use std::sync::Arc;

use burn::tensor::{DType, Int, Tensor, TensorData};
use half::bf16;
use rayon::prelude::*;

use crate::model::Transformer;

/// The embedding's rows converted per chunk when building: a bounded copy at a time.
const BUILD_ROWS: usize = 8192;
/// Rows of E checked at every step against their values when the screen was built.
const SAMPLED: usize = 8;
/// Rows of the head per block of the candidates' scan (`ScreenedHead::candidates`).
const SCAN_ROWS: usize = 1024;
/// The most columns one call of the bf16 kernel takes (`skinny::applies_bf16`).
const MAX_COLUMNS: usize = 32;
/// Relative margin on every bound, for the f64 arithmetic of the bounds themselves.
const MARGIN: f64 = 1e-6;

/// The bf16 copy of a tied head and each row's slack (module docs).
pub struct ScreenedHead {
    vocab: usize,
    dim: usize,
    /// Ê, row-major `[vocab, dim]`.
    rounded: Vec<bf16>,
    /// `s_i`, rounded up.
    slack: Vec<f32>,
    /// The largest `s_i`.
    widest: f64,
    /// A few rows of E spread over the vocabulary (`sampled`) and their values (`samples`,
    /// row-major), read again at each step to check that E is the one the screen was built from.
    sampled: Vec<u32>,
    samples: Vec<f32>,
    /// The approximate logits of the last step, kept so that a step does not zero 16 MB anew.
    scratch: std::sync::Mutex<Vec<f32>>,
}

impl std::fmt::Debug for ScreenedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScreenedHead({} × {})", self.vocab, self.dim)
    }
}

impl ScreenedHead {
    /// The screen of `net`'s head, or `None` where it does not apply: an untied head, an
    /// embedding not f32 on flex, a CPU without AVX2 and FMA, or `LANDERMT_SCREEN=0`.
    pub fn of(net: &Transformer) -> Option<Arc<Self>> {
        let embed = net.embed_tokens.val();
        let usable = net.lm_head.is_none() && crate::nn::on_host(&embed) && embed.dtype() == DType::F32;
        if !usable || !crate::vmath::has_avx2_fma() || !enabled() {
            return None;
        }
        Self::new(&embed).map(Arc::new)
    }

    /// The screen of the f32 head E = `embed` (`[vocab, dim]`, on flex), on a CPU with AVX2
    /// and FMA; `None` if its values cannot be read as f32.
    pub fn new(embed: &Tensor<2>) -> Option<Self> {
        assert!(crate::vmath::has_avx2_fma(), "the screened head needs AVX2 and FMA");
        let [vocab, dim] = embed.dims();
        let (mut rounded, mut slack) = (Vec::with_capacity(vocab * dim), Vec::with_capacity(vocab));
        for first in (0..vocab).step_by(BUILD_ROWS) {
            let rows = BUILD_ROWS.min(vocab - first);
            let chunk: Vec<f32> = embed.clone().narrow(0, first, rows).into_data().try_into_vec::<f32>().ok()?;
            let converted: Vec<RoundedRow> = chunk.par_chunks(dim).map(round_row).collect();
            for row in converted {
                rounded.extend(row.values);
                slack.push(row.slack);
            }
        }
        let widest = slack.iter().fold(0f64, |m, &s| m.max(f64::from(s)));
        let mut sampled: Vec<u32> = (0..SAMPLED).map(|k| (k * (vocab.max(1) - 1) / (SAMPLED - 1)) as u32).collect();
        sampled.dedup();
        let samples = gather(embed, &sampled)?;
        Some(Self { vocab, dim, rounded, slack, widest, sampled, samples, scratch: Default::default() })
    }

    /// Each row's argmax of the f32 logits `E · h` over the tokens not in `banned(row)`, for
    /// `hidden` of `[rows, dim]` and `embed` the E this screen was built from; `None` where the
    /// screen cannot vouch for it (a logit or a bound not finite, every token banned), and the
    /// caller computes the logits instead.
    pub fn argmax(&self, embed: &Tensor<2>, hidden: &[f32], banned: &dyn Fn(usize) -> Vec<u32>) -> Option<Vec<u32>> {
        let rows = hidden.len() / self.dim;
        if rows == 0 || hidden.len() != rows * self.dim || embed.dims() != [self.vocab, self.dim] || embed.dtype() != DType::F32 {
            return None;
        }
        // b_i = ‖h‖·s_i, with room for the f64 arithmetic of the bounds and for underflow.
        let scales: Vec<Scale> = hidden.chunks_exact(self.dim).map(Scale::new).collect();
        if !scales.iter().all(|s| s.norm.is_finite()) {
            return None;
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let approx = self.approx(hidden, rows, &mut scratch);
        for r in 0..rows {
            for t in banned(r) {
                approx[t as usize * rows + r] = f32::NEG_INFINITY;
            }
        }
        let candidates = self.candidates(approx, &scales)?;
        drop(scratch);
        let next = self.exact_argmax(embed, hidden, &candidates)?;
        SCREENED_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(next)
    }

    /// `approx[i · rows + r] = Ê_i · h_r` in `buffer`, [`MAX_COLUMNS`] rows of `hidden` per
    /// call of the kernel, which writes every entry.
    fn approx<'b>(&self, hidden: &[f32], rows: usize, buffer: &'b mut Vec<f32>) -> &'b mut [f32] {
        buffer.resize(self.vocab * rows, 0.0);
        let approx = &mut buffer[..self.vocab * rows];
        for first in (0..rows).step_by(MAX_COLUMNS) {
            let n = MAX_COLUMNS.min(rows - first);
            let b = (hidden[first * self.dim..].as_ptr(), 1, self.dim as isize);
            let out = (approx[first..].as_mut_ptr(), rows as isize, 1);
            // SAFETY: Ê is vocab × dim row-major; B is `hidden`'s rows first..first + n as
            // dim × n columns (row stride 1, column stride dim); out holds vocab rows of `rows`
            // floats, of which columns first..first + n are written. `applies_bf16` holds:
            // 1 ≤ n ≤ 32, a unit column stride, AVX2 and FMA (checked in `of` and `new`).
            unsafe { crate::skinny::product_bf16(self.vocab, n, self.dim, self.rounded.as_ptr(), self.dim as isize, b, out) };
        }
        approx
    }

    /// Each row's first maximum of the exact f32 logits over its candidates (in increasing id),
    /// reading the candidates' rows of E, and with them the sampled rows: if those are not what
    /// the screen was built from, E has changed since (trained further), and `None` leaves the
    /// step to the f32 logits.
    fn exact_argmax(&self, embed: &Tensor<2>, hidden: &[f32], candidates: &[Vec<u32>]) -> Option<Vec<u32>> {
        let dim = self.dim;
        let mut ids: Vec<u32> = candidates.iter().flatten().chain(&self.sampled).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let rows = gather(embed, &ids)?;
        let row = |id: u32| ids.binary_search(&id).ok().map(|at| &rows[at * dim..(at + 1) * dim]);
        let unchanged = self.sampled.iter().zip(self.samples.chunks_exact(dim)).all(|(&id, kept)| row(id).is_some_and(|r| r.iter().zip(kept).all(|(a, b)| a.to_bits() == b.to_bits())));
        if !unchanged {
            return None;
        }
        let best = |(cands, h): (&Vec<u32>, &[f32])| {
            let mut best = (f32::NEG_INFINITY, cands[0]);
            for &id in cands {
                // SAFETY: `new` checked AVX2 and FMA.
                let logit = unsafe { fma_chain(row(id).expect("gathered"), h) };
                if logit > best.0 {
                    best = (logit, id);
                }
            }
            best.1
        };
        Some(candidates.iter().zip(hidden.chunks_exact(dim)).map(best).collect())
    }

    /// `b_i` for row i of the head and a hidden row of scale `s` (module docs).
    #[inline]
    fn bound(&self, i: usize, s: &Scale) -> f64 {
        f64::from(self.slack[i]) * s.norm + s.floor
    }

    /// Per hidden row, in increasing id: the tokens whose exact logit may be the row's maximum.
    /// With `top` the row's largest approx and B = ‖h‖·max_i s_i (≥ every b_i), the best exact
    /// logit is at least `floor = top − B` (that of top's own token), so a candidate needs
    /// `approx_i + b_i ≥ floor`, and before that the cheap `approx_i ≥ top − 2B`: two passes of
    /// f32 comparisons over the logits, the bound's f64 arithmetic only for the few that pass.
    fn candidates(&self, approx: &[f32], scales: &[Scale]) -> Option<Vec<Vec<u32>>> {
        let rows = scales.len();
        // Each block's maxima per row: the second pass reads only the blocks that reach `quick`.
        let maxima: Vec<Vec<f32>> = approx.par_chunks(rows * SCAN_ROWS).map(|block| row_maxima(block, rows)).collect::<Option<_>>()?;
        let mut floor = Vec::with_capacity(rows);
        let mut quick = Vec::with_capacity(rows);
        for (r, s) in scales.iter().enumerate() {
            let top = maxima.iter().fold(f32::NEG_INFINITY, |m, b| m.max(b[r]));
            let widest = self.widest * s.norm + s.floor;
            if !top.is_finite() || !widest.is_finite() {
                return None;
            }
            floor.push(f64::from(top) - widest);
            quick.push(round_down(f64::from(top) - 2.0 * widest));
        }
        let mut per_row = vec![Vec::new(); rows];
        for (c, block_max) in maxima.iter().enumerate() {
            let reached: Vec<usize> = (0..rows).filter(|&r| block_max[r] >= quick[r]).collect();
            for (k, logits) in approx[c * rows * SCAN_ROWS..].chunks_exact(rows).take(SCAN_ROWS).enumerate() {
                let i = c * SCAN_ROWS + k;
                for &r in &reached {
                    let a = logits[r];
                    if a >= quick[r] && f64::from(a) + self.bound(i, &scales[r]) >= floor[r] {
                        per_row[r].push(i as u32);
                    }
                }
            }
        }
        Some(per_row)
    }
}

/// Each row's largest value in `chunk` (`[n, rows]`), or `None` if one is NaN or +∞ (a logit
/// the screen cannot bound; banned tokens are −∞).
fn row_maxima(chunk: &[f32], rows: usize) -> Option<Vec<f32>> {
    let mut top = vec![f32::NEG_INFINITY; rows];
    let mut spoilt = false;
    for block in chunk.chunks_exact(rows) {
        for (t, &a) in top.iter_mut().zip(block) {
            // Written so that both compile to vector compares (`f32::max` handles NaN apart).
            spoilt |= a.is_nan() | (a == f32::INFINITY);
            *t = if a > *t { a } else { *t };
        }
    }
    (!spoilt).then_some(top)
}

/// `x` as an f32 no larger than it.
fn round_down(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) > x { y.next_down() } else { y }
}

/// What a hidden row h brings to its bounds: `‖h‖₂` (times 1 + [`MARGIN`]), and a floor for
/// sums that pass through subnormals, where γ does not hold (half an ulp of the smallest
/// subnormal per addition, d of them in each of the two sums).
struct Scale {
    norm: f64,
    floor: f64,
}

impl Scale {
    fn new(h: &[f32]) -> Self {
        let norm = h.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        Self { norm: norm * (1.0 + MARGIN), floor: h.len() as f64 * 2f64.powi(-148) + f64::MIN_POSITIVE }
    }
}

/// The textbook bound on the relative rounding of a d-term f32 sum: `d·u / (1 − d·u)`.
fn gamma(d: usize) -> f64 {
    let du = d as f64 * f64::from(f32::EPSILON) / 2.0;
    du / (1.0 - du)
}

/// Whether decoding models get a screen: unless `LANDERMT_SCREEN=0`.
pub fn enabled() -> bool {
    std::env::var("LANDERMT_SCREEN").map_or(true, |v| v != "0")
}

/// How many decoding steps took their tokens from a screened head in this process.
pub fn screened_steps() -> u64 {
    SCREENED_STEPS.load(std::sync::atomic::Ordering::Relaxed)
}

static SCREENED_STEPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One row of E in the screen: Ê_i and s_i (module docs), rounded up.
struct RoundedRow {
    values: Vec<bf16>,
    slack: f32,
}

fn round_row(row: &[f32]) -> RoundedRow {
    let values: Vec<bf16> = row.iter().map(|&x| bf16::from_f32(x)).collect();
    let (mut diff, mut norm) = (0f64, 0f64);
    for (&x, &y) in row.iter().zip(&values) {
        let (x, y) = (f64::from(x), f64::from(y.to_f32()));
        diff += (x - y).powi(2);
        norm += y * y;
    }
    let gamma = gamma(row.len());
    let slack = diff.sqrt() * (1.0 + gamma) + 2.0 * gamma * norm.sqrt();
    RoundedRow { values, slack: round_up(slack * (1.0 + MARGIN)) }
}

/// `x` as an f32 no smaller than it (NaN and infinity pass through).
fn round_up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x { y.next_up() } else { y }
}

/// Rows `ids` of `embed`, row-major.
fn gather(embed: &Tensor<2>, ids: &[u32]) -> Option<Vec<f32>> {
    let index = Tensor::<1, Int>::from_data(TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [ids.len()]), &embed.device());
    embed.clone().select(0, index).into_data().try_into_vec::<f32>().ok()
}

/// `Σ_p a[p]·b[p]` as one fused multiply-add after another from 0, in order: the sum each of
/// `skinny`'s f32 kernels computes for one output.
///
/// # Safety
/// The CPU must have FMA.
#[target_feature(enable = "fma")]
unsafe fn fma_chain(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |acc, (&x, &y)| x.mul_add(y, acc))
}
