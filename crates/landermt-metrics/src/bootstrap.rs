//! Bootstrap resampling as sacreBLEU 2.6.0 does it, so that confidence intervals and paired
//! significance tests (`--confidence`, `--paired-bs`) reproduce its numbers: numpy's
//! `default_rng(seed)` (PCG64 seeded through SeedSequence) draws the segment indices with
//! `choice(N, (n_samples, N))`, and each sample is scored on float32 statistics.

/// numpy's SeedSequence(seed).generate_state(words, uint64) (pool size 4).
fn seed_sequence(mut seed: u64, words: usize) -> Vec<u64> {
    const INIT_A: u32 = 0x43B0_D7E5;
    const MULT_A: u32 = 0x931E_8875;
    const INIT_B: u32 = 0x8B51_F9DD;
    const MULT_B: u32 = 0x58F3_8DED;
    const MIX_L: u32 = 0xCA01_F9DD;
    const MIX_R: u32 = 0x4973_F715;
    let mut entropy = Vec::new();
    loop {
        entropy.push(seed as u32);
        seed >>= 32;
        if seed == 0 {
            break;
        }
    }
    let mut hash = INIT_A;
    let mut hashmix = |v: u32| {
        let mut v = v ^ hash;
        hash = hash.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_L.wrapping_mul(x).wrapping_sub(MIX_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool: Vec<u32> = (0..4).map(|i| hashmix(entropy.get(i).copied().unwrap_or(0))).collect();
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(4) {
        for dst in 0..4 {
            let h = hashmix(e);
            pool[dst] = mix(pool[dst], h);
        }
    }
    let mut hc = INIT_B;
    let words32: Vec<u32> = (0..2 * words)
        .map(|i| {
            let mut v = pool[i % 4] ^ hc;
            hc = hc.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hc);
            v ^ (v >> 16)
        })
        .collect();
    (0..words).map(|k| words32[2 * k] as u64 | (words32[2 * k + 1] as u64) << 32).collect()
}

/// numpy's PCG64 (XSL-RR 128/64) with its 32-bit buffering.
struct Pcg64 {
    state: u128,
    inc: u128,
    half: Option<u32>,
}

const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341;

impl Pcg64 {
    fn new(seed: u64) -> Self {
        let s = seed_sequence(seed, 4);
        let initstate = (s[0] as u128) << 64 | s[1] as u128;
        let initseq = (s[2] as u128) << 64 | s[3] as u128;
        let mut g = Self { state: 0, inc: initseq << 1 | 1, half: None };
        g.step();
        g.state = g.state.wrapping_add(initstate);
        g.step();
        g
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    fn next_u64(&mut self) -> u64 {
        self.step();
        let x = (self.state >> 64) as u64 ^ self.state as u64;
        x.rotate_right((self.state >> 122) as u32)
    }

    fn next_u32(&mut self) -> u32 {
        if let Some(h) = self.half.take() {
            return h;
        }
        let n = self.next_u64();
        self.half = Some((n >> 32) as u32);
        n as u32
    }

    /// numpy's buffered bounded Lemire draw in `[0, range]`.
    fn bounded(&mut self, range: u32) -> u32 {
        let excl = range as u64 + 1;
        let mut m = self.next_u32() as u64 * excl;
        if (m & 0xFFFF_FFFF) < excl {
            let threshold = (u32::MAX - range) as u64 % excl;
            while (m & 0xFFFF_FFFF) < threshold {
                m = self.next_u32() as u64 * excl;
            }
        }
        (m >> 32) as u32
    }
}

/// `np.random.default_rng(seed).choice(n, size=(samples, n))`: the segments of each sample.
pub fn sample_indices(n: usize, samples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut g = Pcg64::new(seed);
    (0..samples).map(|_| (0..n).map(|_| g.bounded((n - 1) as u32) as usize).collect()).collect()
}

fn f32r(x: f64) -> f64 {
    x as f32 as f64
}

/// BLEU (13a-style stats, exp smoothing, no effective order) of float32-summed statistics,
/// rounded where numpy's float32 arithmetic rounds.
pub fn bleu_f32(s: &crate::bleu::Stats) -> f64 {
    let (sys, rf) = (s[0] as f64, s[1] as f64);
    let bp = if sys < rf { if sys > 0.0 { (1.0 - rf / sys).exp() } else { 0.0 } } else { 1.0 };
    if s[2..6].iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut p = [0f64; 4];
    let mut smooth = 1.0;
    for n in 0..4 {
        let (c, t) = (s[2 + n] as f64, s[6 + n] as f64);
        if t == 0.0 {
            break;
        }
        p[n] = if c == 0.0 {
            smooth *= 2.0;
            f32r(100.0 / f32r(smooth * t))
        } else {
            f32r(f32r(100.0 * c) / t)
        };
    }
    let log = |x: f64| if x == 0.0 { -9_999_999_999.0 } else { x.ln() };
    bp * (p.iter().map(|&x| log(x)).sum::<f64>() / 4.0).exp()
}

/// chrF of float32 statistics, computed in float32 as numpy does.
pub fn chrf_f32(s: &[[u64; 3]], beta: f32) -> f64 {
    let (mut ap, mut ar, mut eff) = (0f32, 0f32, 0u32);
    for &[h, r, m] in s {
        if h > 0 && r > 0 {
            ap += m as f32 / h as f32;
            ar += m as f32 / r as f32;
            eff += 1;
        }
    }
    if eff == 0 {
        return 0.0;
    }
    ap /= eff as f32;
    ar /= eff as f32;
    if ap + ar == 0.0 {
        return 0.0;
    }
    let f = beta * beta;
    let score = (1.0 + f) * ap * ar / (f * ap + ar);
    (100f32 * score) as f64
}

/// BLEU of each bootstrap sample: the segment statistics `stats` summed over each row of
/// `idx` (see [`sample_indices`]), scored as [`bleu_f32`].
pub fn bleu_samples(stats: &[crate::bleu::Stats], idx: &[Vec<usize>]) -> Vec<f64> {
    idx.iter().map(|row| bleu_f32(&crate::bleu::sum(&row.iter().map(|&i| stats[i]).collect::<Vec<_>>()))).collect()
}

/// chrF (β = 2) of each bootstrap sample, as [`chrf_f32`].
pub fn chrf_samples(stats: &[Vec<[u64; 3]>], idx: &[Vec<usize>]) -> Vec<f64> {
    idx.iter().map(|row| chrf_f32(&crate::chrf::sum(&row.iter().map(|&i| stats[i].clone()).collect::<Vec<_>>()), 2.0)).collect()
}

/// numpy's pairwise summation of a contiguous 1-D array, each addition rounded by `round`.
fn pairwise_sum(v: &[f64], round: &dyn Fn(f64) -> f64) -> f64 {
    let n = v.len();
    if n < 8 {
        return v.iter().fold(0.0, |acc, &x| round(acc + x));
    }
    if n <= 128 {
        let mut r: Vec<f64> = v[..8].to_vec();
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] = round(r[j] + v[i + j]);
            }
            i += 8;
        }
        let mut res = round(round(round(r[0] + r[1]) + round(r[2] + r[3])) + round(round(r[4] + r[5]) + round(r[6] + r[7])));
        for &x in &v[i..] {
            res = round(res + x);
        }
        return res;
    }
    let mut n2 = n / 2;
    n2 -= n2 % 8;
    round(pairwise_sum(&v[..n2], round) + pairwise_sum(&v[n2..], round))
}

/// `ndarray.mean()` in float64 (`f32: false`) or float32.
pub fn numpy_mean(v: &[f64], f32: bool) -> f64 {
    let round: &dyn Fn(f64) -> f64 = if f32 { &f32r } else { &|x| x };
    round(pairwise_sum(v, round) / v.len() as f64)
}

/// A bootstrap estimate: the mean of the sample scores and half the width of the 95 % interval
/// (`raw[n/40]` to `raw[n − n/40 − 1]` of the sorted samples).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci: f64,
}

/// sacreBLEU's interval of sample scores; `exact_mean` uses an exactly rounded mean
/// (`statistics.mean`, the single-system `--confidence`), otherwise numpy's mean of the sorted
/// scores (the paired test; `f32` for chrF's float32 scores).
pub fn estimate(scores: &[f64], exact_mean: bool, f32: bool) -> Estimate {
    let mut s = scores.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let (lo, hi) = (s[n / 40], s[n - n / 40 - 1]);
    let mean = if exact_mean { exact_sum(&s) / n as f64 } else { numpy_mean(&s, f32) };
    Estimate { mean, ci: if f32 { f32r(0.5 * (hi - lo)) } else { 0.5 * (hi - lo) } }
}

/// A correctly rounded sum (Shewchuk's algorithm, as Python's `math.fsum`).
fn exact_sum(v: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &x in v {
        let mut x = x;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    partials.iter().sum()
}

/// The paired bootstrap test of sacreBLEU (`--paired-bs`): the p-value that `system` differs
/// from `baseline` by chance, from sample scores on shared resamplings.
pub fn paired_p_value(baseline: &[f64], system: &[f64], baseline_score: f64, system_score: f64, f32: bool) -> f64 {
    let diffs: Vec<f64> = baseline.iter().zip(system).map(|(b, s)| if f32 { f32r((s - b).abs()) } else { (s - b).abs() }).collect();
    let mean = numpy_mean(&diffs, f32);
    let real = (baseline_score - system_score).abs();
    let count = diffs.iter().filter(|&&d| (if f32 { f32r(d - mean) } else { d - mean }) > real).count();
    (count + 1) as f64 / (diffs.len() + 1) as f64
}

/// `system`'s corpus BLEU against `baseline`'s on the same references, and sacreBLEU's paired
/// bootstrap p-value of the difference (`--paired-bs`, `samples` resamplings from `seed`).
pub fn paired_bleu(bleu: &crate::Bleu, references: &[String], baseline: &[String], system: &[String], samples: usize, seed: u64) -> (f64, f64, f64) {
    let idx = sample_indices(references.len(), samples, seed);
    let score = |hyps: &[String]| {
        let stats = bleu.all_stats(hyps, references);
        (bleu.score_stats(&crate::bleu::sum(&stats)).score, bleu_samples(&stats, &idx))
    };
    let ((b, bs), (s, ss)) = (score(baseline), score(system));
    (b, s, paired_p_value(&bs, &ss, b, s, false))
}

/// The paired change of a mean over sentences, `after − before` on the same sentences (a
/// system's LM loss against the baseline's), with its 95 % percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub delta: f64,
    pub low: f64,
    pub high: f64,
}

/// [`Change`] over `samples` resamplings of the sentences, as numpy computes
/// `d = after - before; np.percentile(d[default_rng(seed).choice(n, (samples, n))].mean(1),
/// [2.5, 97.5])`; `None` without sentences or when the lengths differ.
pub fn mean_change(before: &[f64], after: &[f64], samples: usize, seed: u64) -> Option<Change> {
    if before.is_empty() || before.len() != after.len() || samples == 0 {
        return None;
    }
    let d: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let mut means: Vec<f64> = sample_indices(d.len(), samples, seed).iter().map(|idx| numpy_mean(&idx.iter().map(|&i| d[i]).collect::<Vec<_>>(), false)).collect();
    means.sort_by(f64::total_cmp);
    Some(Change { delta: numpy_mean(&d, false), low: percentile(&means, 2.5), high: percentile(&means, 97.5) })
}

/// numpy's default (`linear`) percentile `q` of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (i, t) = (pos.floor() as usize, pos - pos.floor());
    let (a, b) = (sorted[i], sorted[(i + 1).min(sorted.len() - 1)]);
    // numpy's lerp, exact at both ends.
    if t >= 0.5 { b - (b - a) * (1.0 - t) } else { a + (b - a) * t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcg64_matches_numpys_first_draws_for_seed_12345() {
        // np.random.default_rng(12345).choice(40, size=(1000, 40)) begins with these.
        let idx = sample_indices(40, 1, 12345);
        assert_eq!(idx[0][..8], [27, 9, 31, 12, 8, 31, 25, 27]);
    }

    #[test]
    fn mean_change_matches_numpys_paired_percentile_interval() {
        // numpy 2: d = after - before; m = d[np.random.default_rng(12345).choice(10, (1000, 10))].mean(1)
        // d.mean() = 0.2099999999999999, np.percentile(m, [2.5, 97.5]) = [0.0497499999999998, 0.37]
        let before = [3.1, 2.7, 4.0, 3.3, 2.9, 3.8, 3.5, 2.2, 4.4, 3.0];
        let after = [3.4, 2.6, 4.5, 3.2, 3.3, 3.9, 3.9, 2.5, 4.1, 3.6];
        let c = mean_change(&before, &after, 1000, 12345).unwrap();
        for (got, want) in [(c.delta, 0.2099999999999999), (c.low, 0.0497499999999998), (c.high, 0.37)] {
            assert!((got - want).abs() < 1e-12, "{c:?}");
        }
        assert_eq!(mean_change(&before, &after[..9], 1000, 12345), None, "unpaired lengths");
        assert_eq!(mean_change(&[], &[], 1000, 12345), None);
    }
}
