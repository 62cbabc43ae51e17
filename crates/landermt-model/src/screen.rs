//! Greedy decoding's head at half the bytes, with the f32 head's argmax: the screened head.
//!
//! A decoding step of up to 16 rows on a two-core machine reads every weight once, and the
//! tied head `E · h` (Gemma 3's E is 262,144 × 640 f32, 671 MB) is two thirds of those bytes.
//! Greedy decoding needs only each row's argmax, so the head is read from a bf16 copy Ê of E
//! instead, and the argmax is recovered exactly:
//! - `approx_i = Ê_i · ĥ`, an f32 sum of exact products, where ĥ is the hidden row as the
//!   kernels read it ([`Engine`]): h itself on AVX2/AVX-512 (`skinny::product_bf16`), h rounded
//!   to bf16 on AMX ([`crate::amx`]);
//! - `exact_i`, the f32 head's logit: the f32 fused multiply-add chain over the hidden size in
//!   order, as `skinny`'s f32 kernels compute every output;
//! - `|approx_i − exact_i| ≤ b_i = ‖h‖ (‖E_i − Ê_i‖ + γ‖E_i‖) + ‖Ê_i‖ (‖h − ĥ‖ + γ‖ĥ‖)`:
//!   `E_i·h − Ê_i·ĥ = (E_i − Ê_i)·h + Ê_i·(h − ĥ)` with Cauchy–Schwarz on each term, and the
//!   textbook bound `γ = d·u / (1 − d·u)`, `u = 2⁻²⁴`, on the rounding of a d-term f32 sum in
//!   any order (both sums);
//! - so every maximum of `exact` lies among the candidates
//!   `approx_i + b_i ≥ max_j (approx_j − b_j)`, whose exact logits are then computed from E's
//!   own rows.
//!
//! On Gemma 3 270M a row has a few candidates. The argmax, ties to the lowest id, is the one the
//! f32 head gives wherever `skinny`'s f32 kernel computes that head (a BLAS is active, 2 to 32
//! rows): the same sums, bit for bit. One-row steps are otherwise `sgemv`'s, and the pure-Rust
//! GEMM's sums come in another order; there the two heads can differ only between logits within
//! f32 rounding of each other.
//!
//! Built by [`crate::LanguageModel::into_decoding`] for tied f32 heads on flex, and only
//! valid while the embedding does not change (a decoding model's weights are final): each step
//! reads eight rows of E again beside the candidates', and a screen whose E has changed since
//! leaves the step to the f32 logits.
//! `LANDERMT_SCREEN=0` leaves it out, to compare the heads; `LANDERMT_SCREEN=avx` keeps its
//! steps off AMX.

use std::sync::Arc;

use burn::tensor::{DType, Int, Tensor, TensorData};
use half::bf16;
use rayon::prelude::*;

use crate::amx;
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
/// The unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Which kernels compute a step's approximate logits from the bf16 copy (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `skinny::product_bf16` (AVX2 or AVX-512 FMA), with h in f32.
    Avx,
    /// AMX tiles ([`crate::amx`]), with h rounded to bf16, for 2 to 32 hidden rows; one row,
    /// more than 32, or a hidden size not a multiple of 32 go to [`Engine::Avx`].
    Amx,
}

impl Engine {
    /// The fastest this CPU has: AMX where Linux grants it, unless `LANDERMT_SCREEN=avx`.
    pub fn chosen() -> Engine {
        let avx = std::env::var("LANDERMT_SCREEN").is_ok_and(|v| v == "avx");
        if amx::available() && !avx { Engine::Amx } else { Engine::Avx }
    }

    /// Whether this CPU runs the engine.
    pub fn available(self) -> bool {
        crate::vmath::has_avx2_fma() && (self == Engine::Avx || amx::available())
    }
}

/// The bf16 copy of a tied head and each row's terms of the bound (module docs).
pub struct ScreenedHead {
    vocab: usize,
    dim: usize,
    engine: Engine,
    /// Ê, row-major `[vocab, dim]`, subnormals flushed to zero (as AMX reads them).
    rounded: Vec<bf16>,
    /// `‖E_i − Ê_i‖ + γ‖E_i‖` and `‖Ê_i‖`, rounded up, and the largest of each.
    rounding: Vec<f32>,
    norm: Vec<f32>,
    widest: (f64, f64),
    /// A few rows of E spread over the vocabulary (`sampled`) and their values (`samples`,
    /// row-major), read again at each step to check that E is the one the screen was built from.
    sampled: Vec<u32>,
    samples: Vec<f32>,
    /// The approximate logits of the last step, kept so that a step does not zero 16 MB anew.
    scratch: std::sync::Mutex<Vec<f32>>,
}

impl std::fmt::Debug for ScreenedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScreenedHead({:?}, {} × {})", self.engine, self.vocab, self.dim)
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
        Self::new(&embed, Engine::chosen()).map(Arc::new)
    }

    /// The screen of the f32 head E = `embed` (`[vocab, dim]`, on flex), its steps on `engine`;
    /// `None` if its values cannot be read as f32.
    ///
    /// # Panics
    /// If the CPU cannot run the engine (`engine.available()`).
    pub fn new(embed: &Tensor<2>, engine: Engine) -> Option<Self> {
        assert!(engine.available(), "this CPU cannot run the screened head on {engine:?}");
        let [vocab, dim] = embed.dims();
        let (mut rounded, mut rounding, mut norm) = (Vec::with_capacity(vocab * dim), Vec::with_capacity(vocab), Vec::with_capacity(vocab));
        for first in (0..vocab).step_by(BUILD_ROWS) {
            let rows = BUILD_ROWS.min(vocab - first);
            let chunk: Vec<f32> = embed.clone().narrow(0, first, rows).into_data().try_into_vec::<f32>().ok()?;
            for row in chunk.par_chunks(dim).map(round_row).collect::<Vec<_>>() {
                rounded.extend(row.values);
                rounding.push(row.rounding);
                norm.push(row.norm);
            }
        }
        // A row that is not finite has no bound; its logits are NaN or ±∞, which a step either
        // bans or declines to screen (`row_maxima`).
        let largest = |v: &[f32]| v.iter().filter(|x| x.is_finite()).fold(0f64, |m, &x| m.max(f64::from(x)));
        let widest = (largest(&rounding), largest(&norm));
        let mut sampled: Vec<u32> = (0..SAMPLED).map(|k| (k * (vocab.max(1) - 1) / (SAMPLED - 1)) as u32).collect();
        sampled.dedup();
        let samples = gather(embed, &sampled)?;
        Some(Self { vocab, dim, engine, rounded, rounding, norm, widest, sampled, samples, scratch: Default::default() })
    }

    /// The engine this screen's steps run on.
    pub fn engine(&self) -> Engine {
        self.engine
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
        let banned: Vec<Vec<u32>> = (0..rows).map(banned).collect();
        let on_amx = self.engine == Engine::Amx && (2..=amx::MAX_COLUMNS).contains(&rows) && amx::fits(self.dim);
        let (scales, tiles) = if on_amx {
            let (tiles, rounded) = amx::pack(hidden, self.dim);
            (hidden.chunks_exact(self.dim).zip(rounded.chunks_exact(self.dim)).map(|(h, r)| Scale::new(h, r)).collect::<Vec<_>>(), Some(tiles))
        } else {
            (hidden.chunks_exact(self.dim).map(|h| Scale::new(h, h)).collect(), None)
        };
        if !scales.iter().all(|s| s.norm.is_finite() && s.spread.is_finite()) {
            return None;
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let approx = match tiles {
            Some(tiles) => self.approx_amx(hidden, &tiles, &banned, &mut scratch)?,
            None => self.approx_avx(hidden, &banned, &mut scratch)?,
        };
        let candidates = self.candidates(&approx, &scales)?;
        drop(scratch);
        let next = self.exact_argmax(embed, hidden, &candidates)?;
        SCREENED_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if on_amx {
            AMX_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Some(next)
    }

    /// `Ê_i · h_r` at `[i, r]` in `buffer`, [`MAX_COLUMNS`] rows of `hidden` per call of the
    /// kernel, which writes every entry; banned tokens −∞. `None` if a logit is NaN or +∞.
    fn approx_avx<'b>(&self, hidden: &[f32], banned: &[Vec<u32>], buffer: &'b mut Vec<f32>) -> Option<Approx<'b>> {
        let rows = banned.len();
        buffer.resize(self.vocab * rows, 0.0);
        let values = &mut buffer[..self.vocab * rows];
        for first in (0..rows).step_by(MAX_COLUMNS) {
            let n = MAX_COLUMNS.min(rows - first);
            // SAFETY: `out` holds vocab rows of `rows` floats, of which columns first..first + n
            // are written.
            unsafe { self.product_avx(0, self.vocab, &hidden[first * self.dim..(first + n) * self.dim], (values[first..].as_mut_ptr(), rows)) };
        }
        finish(values, rows, rows, banned)
    }

    /// `Ê_i · ĥ_r` at `[i, r]` of rows of [`amx::width`] floats in `buffer`, on AMX (`tiles`
    /// from [`amx::pack`]), the rows past the last whole block of 32 with `product_avx` (from
    /// h, whose bound is within ĥ's); banned tokens −∞. `None` if a logit is NaN or +∞.
    fn approx_amx<'b>(&self, hidden: &[f32], tiles: &[bf16], banned: &[Vec<u32>], buffer: &'b mut Vec<f32>) -> Option<Approx<'b>> {
        let (rows, width) = (banned.len(), amx::width(banned.len()));
        buffer.resize(self.vocab * width, 0.0);
        let values = &mut buffer[..self.vocab * width];
        amx::product(&self.rounded, self.vocab, self.dim, tiles, rows, values);
        let done = self.vocab / amx::BLOCK_ROWS * amx::BLOCK_ROWS;
        // SAFETY: `out` holds rows done..vocab of `width` ≥ `rows` floats each.
        unsafe { self.product_avx(done, self.vocab - done, hidden, (values[done * width..].as_mut_ptr(), width)) };
        finish(values, width, rows, banned)
    }

    /// `Ê_i · h_c` for head rows `first..first + count` and the rows of `hidden` (at most
    /// [`MAX_COLUMNS`]) into `out.0[(i − first)·out.1 + c]`.
    ///
    /// # Safety
    /// `out.0` must be valid for `count` rows of `out.1` floats, `out.1` ≥ the hidden rows.
    unsafe fn product_avx(&self, first: usize, count: usize, hidden: &[f32], out: (*mut f32, usize)) {
        let n = hidden.len() / self.dim;
        if count == 0 || n == 0 {
            return;
        }
        let b = (hidden.as_ptr(), 1, self.dim as isize);
        // SAFETY: Ê is vocab × dim row-major, so rows first.. hold count × dim values; B is
        // `hidden`'s rows as dim × n columns (row stride 1, column stride dim); the caller
        // vouches for `out`. `applies_bf16` holds: 1 ≤ n ≤ 32, a unit column stride, AVX2 and
        // FMA (checked in `new`).
        unsafe { crate::skinny::product_bf16(count, n, self.dim, self.rounded[first * self.dim..].as_ptr(), self.dim as isize, b, (out.0, out.1 as isize, 1)) };
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
        f64::from(self.rounding[i]) * s.norm + f64::from(self.norm[i]) * s.spread + s.floor
    }

    /// The largest `b_i` over the head for a hidden row of scale `s`.
    fn widest(&self, s: &Scale) -> f64 {
        self.widest.0 * s.norm + self.widest.1 * s.spread + s.floor
    }

    /// Per hidden row, in increasing id: the tokens whose exact logit may be the row's maximum.
    /// With `top` the row's largest approx and B ≥ every b_i ([`Self::widest`]), the best exact
    /// logit is at least `floor = top − B` (that of top's own token), so a candidate needs
    /// `approx_i + b_i ≥ floor`, and before that the cheap `approx_i ≥ top − 2B`: f32
    /// comparisons over the blocks whose maximum reaches it, the bound's f64 arithmetic only for
    /// the few that pass.
    fn candidates(&self, approx: &Approx, scales: &[Scale]) -> Option<Vec<Vec<u32>>> {
        let mut per_row = vec![Vec::new(); scales.len()];
        for (r, s) in scales.iter().enumerate() {
            let top = approx.blocks.iter().fold(f32::NEG_INFINITY, |m, b| m.max(b[r]));
            let widest = self.widest(s);
            if !top.is_finite() || !widest.is_finite() {
                return None;
            }
            let floor = f64::from(top) - widest;
            let quick = round_down(f64::from(top) - 2.0 * widest);
            for (c, block_max) in approx.blocks.iter().enumerate() {
                if block_max[r] < quick {
                    continue;
                }
                for i in c * SCAN_ROWS..self.vocab.min((c + 1) * SCAN_ROWS) {
                    let a = approx.values[i * approx.width + r];
                    if a >= quick && f64::from(a) + self.bound(i, s) >= floor {
                        per_row[r].push(i as u32);
                    }
                }
            }
        }
        Some(per_row)
    }
}

/// The approximate logits of one step: head row i, hidden row r at `values[i·width + r]`, and
/// each [`SCAN_ROWS`] block's largest per hidden row.
struct Approx<'a> {
    values: &'a mut [f32],
    width: usize,
    blocks: Vec<Vec<f32>>,
}

/// The step's [`Approx`] from logits at `[i, r]` of rows of `width` floats (`rows` ≤ `width` of
/// them real), with the banned tokens set to −∞ and each block's maxima; `None` if a logit is
/// NaN or +∞.
fn finish<'b>(values: &'b mut [f32], width: usize, rows: usize, banned: &[Vec<u32>]) -> Option<Approx<'b>> {
    for (r, tokens) in banned.iter().enumerate() {
        for &t in tokens {
            values[t as usize * width + r] = f32::NEG_INFINITY;
        }
    }
    let blocks = values.par_chunks(width * SCAN_ROWS).map(|block| row_maxima(block, width, rows)).collect::<Option<_>>()?;
    Some(Approx { values, width, blocks })
}

/// Each row's largest value in `chunk` (`[n, width]`, the first `rows` of each), or `None` if
/// one is NaN or +∞ (a logit the screen cannot bound; banned tokens are −∞).
fn row_maxima(chunk: &[f32], width: usize, rows: usize) -> Option<Vec<f32>> {
    let mut top = vec![f32::NEG_INFINITY; rows];
    let mut spoilt = false;
    for block in chunk.chunks_exact(width) {
        for (t, &a) in top.iter_mut().zip(&block[..rows]) {
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

/// What a hidden row h, read by the kernels as ĥ (h itself on AVX, bf16 on AMX), brings to its
/// bounds: `‖h‖₂` and `spread = ‖h − ĥ‖₂ + γ‖ĥ‖₂` (each times 1 + [`MARGIN`]), and a floor for sums and products that pass through subnormals, where γ does not hold: half an
/// ulp of the smallest subnormal per rounding of the f32 chain, and AMX's flushes to zero, up
/// to 2⁻¹²⁶ for each of d products and d additions.
struct Scale {
    norm: f64,
    spread: f64,
    floor: f64,
}

impl Scale {
    fn new(h: &[f32], rounded: &[f32]) -> Self {
        let (mut norm, mut residual, mut hat) = (0f64, 0f64, 0f64);
        for (&x, &y) in h.iter().zip(rounded) {
            let (x, y) = (f64::from(x), f64::from(y));
            norm += x * x;
            residual += (x - y).powi(2);
            hat += y * y;
        }
        let d = h.len() as f64;
        let spread = residual.sqrt() + gamma(h.len()) * hat.sqrt();
        let floor = d * 2f64.powi(-148) + 2.0 * d * 2f64.powi(-126) + f64::MIN_POSITIVE;
        Self { norm: norm.sqrt() * (1.0 + MARGIN), spread: spread * (1.0 + MARGIN), floor }
    }
}

/// The textbook bound on the relative rounding of a d-term f32 sum: `d·u / (1 − d·u)`.
fn gamma(d: usize) -> f64 {
    let du = d as f64 * U;
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

/// How many of those steps computed their bf16 logits on AMX tiles.
pub fn amx_steps() -> u64 {
    AMX_STEPS.load(std::sync::atomic::Ordering::Relaxed)
}

static SCREENED_STEPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static AMX_STEPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One row of E in the screen: Ê_i, `‖E_i − Ê_i‖ + γ‖E_i‖` and `‖Ê_i‖`, rounded up (module
/// docs).
struct RoundedRow {
    values: Vec<bf16>,
    rounding: f32,
    norm: f32,
}

fn round_row(row: &[f32]) -> RoundedRow {
    let values: Vec<bf16> = row.iter().map(|&x| amx::flush(bf16::from_f32(x))).collect();
    let (mut diff, mut norm, mut exact) = (0f64, 0f64, 0f64);
    for (&x, &y) in row.iter().zip(&values) {
        let (x, y) = (f64::from(x), f64::from(y.to_f32()));
        diff += (x - y).powi(2);
        norm += y * y;
        exact += x * x;
    }
    let rounding = diff.sqrt() + gamma(row.len()) * exact.sqrt();
    RoundedRow { values, rounding: round_up(rounding * (1.0 + MARGIN)), norm: round_up(norm.sqrt() * (1.0 + MARGIN)) }
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
