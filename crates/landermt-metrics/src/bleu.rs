//! Corpus and sentence BLEU exactly as sacreBLEU 2.x computes it (one reference per segment):
//! clipped n-gram matches up to 4, the closest reference length, the brevity penalty, and the
//! smoothing methods `exp` (default), `floor`, `add-k` and `none`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tokenize::Tokenize;

pub const MAX_ORDER: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Smooth {
    Exp,
    /// Zero precisions become `value / total` (default 0.1).
    Floor(f64),
    /// `k` added to matches and totals of orders 2–4 (default 1).
    AddK(f64),
    None,
}

impl Smooth {
    pub fn name(self) -> &'static str {
        match self {
            Smooth::Exp => "exp",
            Smooth::Floor(_) => "floor",
            Smooth::AddK(_) => "add-k",
            Smooth::None => "none",
        }
    }
}

/// BLEU's settings (sacreBLEU's defaults: 13a, exp, mixed case, no effective order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bleu {
    pub tokenize: Tokenize,
    pub smooth: Smooth,
    pub lowercase: bool,
    pub effective_order: bool,
}

impl Default for Bleu {
    fn default() -> Self {
        Self { tokenize: Tokenize::Mteval13a, smooth: Smooth::Exp, lowercase: false, effective_order: false }
    }
}

impl Bleu {
    /// sacreBLEU's defaults for a target language (ISO 639-1): `zh` tokenisation for Chinese,
    /// 13a for the rest, as WMT reports them.
    pub fn for_target(language: &str) -> Self {
        let tokenize = if language == "zh" { Tokenize::Zh } else { Tokenize::Mteval13a };
        Self { tokenize, ..Default::default() }
    }
}

/// Sufficient statistics: `[sys_len, ref_len, matches 1..4, totals 1..4]`.
pub type Stats = [u64; 2 + 2 * MAX_ORDER];

/// A BLEU score and what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BleuScore {
    pub score: f64,
    pub counts: [f64; MAX_ORDER],
    pub totals: [f64; MAX_ORDER],
    pub precisions: [f64; MAX_ORDER],
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
}

fn ngrams(tokens: &[String]) -> HashMap<&[String], u64> {
    let mut out: HashMap<&[String], u64> = HashMap::new();
    for n in 1..=MAX_ORDER {
        for w in tokens.windows(n) {
            *out.entry(w).or_default() += 1;
        }
    }
    out
}

impl Bleu {
    fn prepare(&self, line: &str) -> Vec<String> {
        let line = if self.lowercase { line.to_lowercase() } else { line.to_string() };
        self.tokenize.tokens(line.trim_end_matches(crate::tokenize::is_py_space))
    }

    /// The statistics of one segment.
    pub fn segment_stats(&self, hyp: &str, reference: &str) -> Stats {
        let (h, r) = (self.prepare(hyp), self.prepare(reference));
        let (hc, rc) = (ngrams(&h), ngrams(&r));
        let mut s: Stats = [0; 2 + 2 * MAX_ORDER];
        s[0] = h.len() as u64;
        s[1] = r.len() as u64;
        for (g, &count) in &hc {
            let n = g.len();
            s[2 + n - 1] += count.min(rc.get(g).copied().unwrap_or(0));
            s[2 + MAX_ORDER + n - 1] += count;
        }
        s
    }

    /// The score of summed statistics (sacreBLEU's `compute_bleu`).
    pub fn score_stats(&self, s: &Stats) -> BleuScore {
        let (sys_len, ref_len) = (s[0], s[1]);
        let mut counts = [0f64; MAX_ORDER];
        let mut totals = [0f64; MAX_ORDER];
        for n in 0..MAX_ORDER {
            counts[n] = s[2 + n] as f64;
            totals[n] = s[2 + MAX_ORDER + n] as f64;
        }
        let bp = if sys_len < ref_len { if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 } } else { 1.0 };
        let mut precisions = [0f64; MAX_ORDER];
        if counts.iter().all(|&c| c == 0.0) {
            return BleuScore { score: 0.0, counts, totals, precisions, bp, sys_len, ref_len };
        }
        let mut smooth_mteval = 1.0;
        let mut eff_order = MAX_ORDER;
        for n in 1..=MAX_ORDER {
            if let Smooth::AddK(k) = self.smooth
                && n > 1
            {
                counts[n - 1] += k;
                totals[n - 1] += k;
            }
            if totals[n - 1] == 0.0 {
                break;
            }
            if self.effective_order {
                eff_order = n;
            }
            if counts[n - 1] == 0.0 {
                match self.smooth {
                    Smooth::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n - 1] = 100.0 / (smooth_mteval * totals[n - 1]);
                    }
                    Smooth::Floor(v) => precisions[n - 1] = 100.0 * v / totals[n - 1],
                    Smooth::AddK(_) | Smooth::None => {}
                }
            } else {
                precisions[n - 1] = 100.0 * counts[n - 1] / totals[n - 1];
            }
        }
        // sacreBLEU's my_log: log(0) is −9999999999.
        let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
        let score = bp * (precisions[..eff_order].iter().map(|&p| log(p)).sum::<f64>() / eff_order as f64).exp();
        BleuScore { score, counts, totals, precisions, bp, sys_len, ref_len }
    }

    /// Statistics of every segment (for corpus scores and bootstrap resampling).
    pub fn all_stats(&self, hyps: &[String], refs: &[String]) -> Vec<Stats> {
        hyps.iter().zip(refs).map(|(h, r)| self.segment_stats(h, r)).collect()
    }

    pub fn corpus(&self, hyps: &[String], refs: &[String]) -> BleuScore {
        self.score_stats(&sum(&self.all_stats(hyps, refs)))
    }

    /// sacreBLEU's `sentence_bleu` uses effective order; pass settings with it set.
    pub fn sentence(&self, hyp: &str, reference: &str) -> BleuScore {
        self.score_stats(&self.segment_stats(hyp, reference))
    }

    /// `nrefs:1|case:…|eff:…|tok:…|smooth:…[|…]|version:2.6.0`, the signature sacreBLEU 2.6.0
    /// prints for these settings.
    pub fn signature(&self) -> String {
        let mut s = format!(
            "nrefs:1|case:{}|eff:{}|tok:{}|smooth:{}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.effective_order { "yes" } else { "no" },
            self.tokenize.name(),
            match self.smooth {
                Smooth::Floor(v) | Smooth::AddK(v) => format!("{}[{v:.2}]", self.smooth.name()),
                other => other.name().to_string(),
            }
        );
        s.push_str(&format!("|version:{}", crate::SACREBLEU_VERSION));
        s
    }
}

pub fn sum(stats: &[Stats]) -> Stats {
    let mut t: Stats = [0; 2 + 2 * MAX_ORDER];
    for s in stats {
        t.iter_mut().zip(s).for_each(|(a, b)| *a += b);
    }
    t
}
