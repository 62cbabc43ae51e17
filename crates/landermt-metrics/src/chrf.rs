//! chrF and chrF++ exactly as sacreBLEU 2.x computes them: character n-grams 1–6 over the line
//! with whitespace removed, word n-grams 1–2 (chrF++) over words with one leading or trailing
//! ASCII punctuation mark split off, all orders averaged together, β = 2.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chrf {
    pub char_order: usize,
    /// 0 for chrF, 2 for chrF++.
    pub word_order: usize,
    pub beta: f64,
    pub lowercase: bool,
}

impl Chrf {
    pub const CHRF: Chrf = Chrf { char_order: 6, word_order: 0, beta: 2.0, lowercase: false };
    pub const CHRF_PP: Chrf = Chrf { char_order: 6, word_order: 2, beta: 2.0, lowercase: false };

    /// Per order `[hyp n-grams, ref n-grams, matches]`, characters first.
    pub fn segment_stats(&self, hyp: &str, reference: &str) -> Vec<[u64; 3]> {
        let (h, r) = if self.lowercase { (hyp.to_lowercase(), reference.to_lowercase()) } else { (hyp.to_string(), reference.to_string()) };
        let mut out = Vec::with_capacity(self.char_order + self.word_order);
        let (hc, rc) = (squeeze(&h), squeeze(&r));
        for n in 1..=self.char_order {
            out.push(stats(&char_ngrams(&hc, n), &char_ngrams(&rc, n)));
        }
        let (hw, rw) = (words(&h), words(&r));
        for n in 1..=self.word_order {
            out.push(stats(&word_ngrams(&hw, n), &word_ngrams(&rw, n)));
        }
        out
    }

    /// The score of summed statistics (sacreBLEU's `_compute_f_score` without eps smoothing).
    pub fn score_stats(&self, s: &[[u64; 3]]) -> f64 {
        let (mut avg_prec, mut avg_rec, mut eff) = (0.0f64, 0.0f64, 0usize);
        for &[n_hyp, n_ref, n_match] in s {
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += n_match as f64 / n_hyp as f64;
                avg_rec += n_match as f64 / n_ref as f64;
                eff += 1;
            }
        }
        if eff == 0 {
            return 0.0;
        }
        avg_prec /= eff as f64;
        avg_rec /= eff as f64;
        if avg_prec + avg_rec == 0.0 {
            return 0.0;
        }
        let b2 = self.beta * self.beta;
        100.0 * (1.0 + b2) * avg_prec * avg_rec / (b2 * avg_prec + avg_rec)
    }

    pub fn all_stats(&self, hyps: &[String], refs: &[String]) -> Vec<Vec<[u64; 3]>> {
        hyps.iter().zip(refs).map(|(h, r)| self.segment_stats(h, r)).collect()
    }

    pub fn corpus(&self, hyps: &[String], refs: &[String]) -> f64 {
        self.score_stats(&sum(&self.all_stats(hyps, refs)))
    }

    pub fn sentence(&self, hyp: &str, reference: &str) -> f64 {
        self.score_stats(&self.segment_stats(hyp, reference))
    }

    /// `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0`.
    pub fn signature(&self) -> String {
        format!("nrefs:1|case:{}|eff:yes|nc:{}|nw:{}|space:no|version:{}", if self.lowercase { "lc" } else { "mixed" }, self.char_order, self.word_order, crate::SACREBLEU_VERSION)
    }

    pub fn name(&self) -> String {
        format!("chrF{}{}", self.beta, if self.word_order > 0 { "++" } else { "" })
    }
}

pub fn sum(stats: &[Vec<[u64; 3]>]) -> Vec<[u64; 3]> {
    let mut t = vec![[0u64; 3]; stats.first().map_or(0, Vec::len)];
    for s in stats {
        for (a, b) in t.iter_mut().zip(s) {
            (0..3).for_each(|i| a[i] += b[i]);
        }
    }
    t
}

fn squeeze(s: &str) -> Vec<char> {
    s.chars().filter(|&c| !crate::tokenize::is_py_space(c)).collect()
}

fn char_ngrams(chars: &[char], n: usize) -> HashMap<&[char], u64> {
    let mut m = HashMap::new();
    for w in chars.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

/// Words with one leading or trailing ASCII punctuation mark split off (sacreBLEU's
/// `_remove_punctuation`).
fn words(s: &str) -> Vec<String> {
    let punct = |c: char| c.is_ascii_punctuation();
    let mut out = Vec::new();
    for w in crate::tokenize::split(s) {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() == 1 {
            out.push(w.to_string());
        } else if punct(*chars.last().expect("non-empty")) {
            out.push(chars[..chars.len() - 1].iter().collect());
            out.push(chars[chars.len() - 1].to_string());
        } else if punct(chars[0]) {
            out.push(chars[0].to_string());
            out.push(chars[1..].iter().collect());
        } else {
            out.push(w.to_string());
        }
    }
    out
}

fn word_ngrams(words: &[String], n: usize) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for w in words.windows(n) {
        *m.entry(w.join(" ")).or_insert(0) += 1;
    }
    m
}

fn stats<K: std::hash::Hash + Eq>(h: &HashMap<K, u64>, r: &HashMap<K, u64>) -> [u64; 3] {
    let n_ref: u64 = r.values().sum();
    let n_hyp: u64 = if r.is_empty() { 0 } else { h.values().sum() };
    let n_match: u64 = h.iter().map(|(k, &c)| c.min(r.get(k).copied().unwrap_or(0))).sum();
    [n_hyp, n_ref, n_match]
}
