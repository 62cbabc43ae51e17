//! `report.json` and `report.md`: what stage 5 measured, and what it was measured on.
//! The figures of the evaluation (transfer matrix, forgetting) are drawn from `report.json`.

use std::path::Path;

use anyhow::{Context, Result};
use itertools::Itertools;
use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning or goes away.
pub const REPORT_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub run: String,
    pub model: String,
    pub shots: usize,
    /// In-context examples of the `icl` system (0: no such system).
    #[serde(default)]
    pub icl_shots: usize,
    pub decoding: Decoding,
    /// The system the paired bootstrap compares every other with.
    pub baseline: String,
    pub metrics: String,
    pub n_bootstrap: usize,
    /// The directions the systems were trained on (the run's) and those they were evaluated on
    /// (the run's, then `eval.extra_directions`).
    pub trained_directions: Vec<String>,
    pub evaluated_directions: Vec<String>,
    /// The method trained on each direction alone for the transfer matrix, if any.
    pub transfer: Option<String>,
    pub systems: Vec<SystemInfo>,
    pub rows: Vec<Row>,
    /// `eval.compare` against every other system (paired bootstrap on shared resamplings).
    pub comparisons: Vec<Comparison>,
    pub lm_loss: Vec<LmRow>,
    /// With `[eval] seeds`: each seeded method's BLEU over its seeds, per direction and test set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<crate::seeds::SeedSummary>,
    /// With `[eval] seeds`: every two seeded methods, and whether "A beats B" holds on every seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_claims: Vec<crate::seeds::SeedClaim>,
    /// What produced the numbers.
    pub inputs: Inputs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decoding {
    pub beams: usize,
    pub length_penalty: f64,
    pub max_new_tokens: usize,
    pub stop: String,
    /// `[eval] no_repeat_ngram` (0: off; absent in reports written before it existed).
    #[serde(default)]
    pub no_repeat_ngram: usize,
    /// `[eval] weights`, when set: what the weights were stored in while decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// The prompt template (its text before `{tgt}` is what the model was given).
    #[serde(default)]
    pub template: String,
}

/// A system's training facts, from its `train.json` (absent for `none`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemInfo {
    pub name: String,
    pub trainable_parameters: usize,
    pub trainable_share: f64,
    pub train_tokens_per_second: Option<f64>,
    pub final_validation_loss: Option<f64>,
    /// SHA-256 of its `delta.safetensors`.
    pub delta_sha256: Option<String>,
    /// The settings it was trained with (`[train]` with its `[train.methods.*]` overrides).
    #[serde(default)]
    pub settings: Option<landermt_train::Settings>,
    /// Rank, alpha, targets and adapter width, for the methods that add weights.
    #[serde(default)]
    pub added: Option<landermt_train::added::AddedSettings>,
    /// Training pairs per direction.
    #[serde(default)]
    pub pairs: Option<usize>,
}

/// One system on one direction and test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub system: String,
    pub direction: String,
    pub test_set: String,
    pub sentences: usize,
    pub bleu: f64,
    pub bleu_signature: String,
    pub bleu_ci: landermt_eval::bootstrap::Estimate,
    pub chrf: f64,
    pub chrf_signature: String,
    pub chrf_ci: landermt_eval::bootstrap::Estimate,
    /// Hypotheses identified as another of the run's languages than the target.
    #[serde(default)]
    pub off_target: Option<landermt_eval::langid::OffTarget>,
    /// Hypotheses whose decoding ran to `max_new_tokens` without stopping (unknown for files
    /// decoded before it was recorded).
    #[serde(default)]
    pub at_limit: Option<usize>,
    /// Paired bootstrap p-values against the baseline (absent for the baseline).
    pub bleu_p: Option<f64>,
    pub chrf_p: Option<f64>,
    pub sentences_per_second: f64,
    /// Tokens generated per second (stop tokens included).
    pub tokens_per_second: f64,
    pub generated_tokens: usize,
    pub hypotheses: String,
}

/// One system against another on a direction and test set: the score differences and the
/// paired-bootstrap p-values (sacreBLEU's `--paired-bs`, `against` as its baseline).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub system: String,
    pub against: String,
    pub direction: String,
    pub test_set: String,
    pub bleu_delta: f64,
    pub bleu_p: f64,
    pub chrf_delta: f64,
    pub chrf_p: f64,
}

/// Forgetting: a system's mean next-token loss on held-out monolingual text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmRow {
    pub system: String,
    pub language: String,
    pub sentences: usize,
    pub loss: f64,
    /// The change against the baseline's loss on the same sentences, with its paired 95 %
    /// bootstrap interval (absent for the baseline and where per-sentence losses were not kept).
    #[serde(default)]
    pub change: Option<landermt_eval::bootstrap::Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inputs {
    /// SHA-256 of the model file(s) as loaded.
    pub model_sha256: String,
    /// SHA-256 of the `[eval]` section as the run used it (JSON).
    pub eval_config_sha256: String,
    /// Per test set and direction, SHA-256 of its sources and references (`src\ttgt\n` lines).
    pub data_sha256: Vec<(String, String, String)>,
    /// The f32 GEMM kernel that ran (absent in reports from before it was recorded).
    #[serde(default)]
    pub gemm: Option<landermt_model::blas::Kernel>,
}

impl Report {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Report = serde_json::from_slice(&bytes).with_context(|| format!("{}: not a report.json", path.display()))?;
        if r.version != REPORT_VERSION {
            anyhow::bail!("{}: report version {} (this landermt writes {REPORT_VERSION}); run `cargo xtask eval` again", path.display(), r.version);
        }
        Ok(r)
    }

    /// The BLEU of `system` on `direction` and `test_set`, if evaluated.
    pub fn bleu(&self, system: &str, direction: &str, test_set: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.system == system && r.direction == direction && r.test_set == test_set).map(|r| r.bleu)
    }

    pub fn test_sets(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.test_set.clone()).unique().collect()
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        self.header(&mut md);
        self.scores_table(&mut md);
        self.comparisons_table(&mut md);
        self.systems_table(&mut md);
        self.settings_table(&mut md);
        self.forgetting_table(&mut md);
        self.transfer_tables(&mut md);
        self.seeds_table(&mut md);
        md.push_str(&format!("\nInputs: model sha256 `{}`, `[eval]` sha256 `{}`.\n", &self.inputs.model_sha256[..16.min(self.inputs.model_sha256.len())], &self.inputs.eval_config_sha256[..16]));
        md
    }

    /// The title and what every number below means: metrics, decoding, shots, precision.
    fn header(&self, md: &mut String) {
        md.push_str(&format!(
            "# Report: {} on {}\n\nBLEU and chrF as sacreBLEU 2.6.0 defines them (landermt's implementation), 95 % bootstrap intervals ({} samples), and paired-bootstrap p-values against `{}`. Decoding: {}, at most {} new tokens, {}-shot, prompt template `{}`.\n\n",
            self.run,
            self.model,
            self.n_bootstrap,
            self.baseline,
            if self.decoding.beams > 1 { format!("beam search ({} beams, length penalty {})", self.decoding.beams, self.decoding.length_penalty) } else { "greedy".into() },
            self.decoding.max_new_tokens,
            self.shots,
            self.decoding.template.escape_debug()
        ));
        if let Some(kernel) = &self.inputs.gemm {
            md.push_str(&format!("f32 GEMM in the process that wrote this report: {kernel}.\n\n"));
        }
        if self.icl_shots > 0 {
            md.push_str(&format!("`icl` is the untuned model given the first {} dev pairs of the direction before each test sentence.\n\n", self.icl_shots));
        }
        if let Some(dtype) = &self.decoding.weights {
            md.push_str(&format!("Every system decoded with its linear maps and embedding stored in {dtype} (`[eval] weights`), products summed in f32.\n\n"));
        }
        if self.decoding.no_repeat_ngram > 0 {
            md.push_str(&format!("No {}-gram repeats within a hypothesis (`no_repeat_ngram`).\n\n", self.decoding.no_repeat_ngram));
        }
        md.push_str(&format!("Decoding stops at {}. Off-target: hypotheses identified (lingua, among the run's languages) as another language than the target. At limit: hypotheses that ran to {} tokens without stopping.\n\n", self.decoding.stop, self.decoding.max_new_tokens));
    }

    /// BLEU, chrF, off-target, runaways and speed of every system on every test set.
    fn scores_table(&self, md: &mut String) {
        md.push_str("| system | direction | test set | BLEU | ± | p | chrF | ± | p | off-target | at limit | sent/s | tok/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let p = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.3}"));
        for r in &self.rows {
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} | {} | {} | {:.2} | {:.1} |\n",
                r.system,
                r.direction,
                r.test_set,
                r.bleu,
                r.bleu_ci.ci,
                p(r.bleu_p),
                r.chrf,
                r.chrf_ci.ci,
                p(r.chrf_p),
                r.off_target.map_or("–".to_string(), |o| format!("{:.1} %", 100.0 * o.rate())),
                r.at_limit.map_or("–".to_string(), |n| format!("{n}/{}", r.sentences)),
                r.sentences_per_second,
                r.tokens_per_second
            ));
        }
        if let Some(r) = self.rows.first() {
            md.push_str(&format!("\nSignatures: BLEU `{}` (`tok:zh` for Chinese targets), chrF `{}`.\n", r.bleu_signature, r.chrf_signature));
        }
    }

    /// The first comparison's system against each other one: score differences and paired p-values.
    fn comparisons_table(&self, md: &mut String) {
        if let Some(c) = self.comparisons.first() {
            md.push_str(&format!(
                "\n`{}` against each system: score differences and paired-bootstrap p-values.\n\n| against | direction | test set | ΔBLEU | p | ΔchrF | p |\n|---|---|---|---|---|---|---|\n",
                c.system
            ));
            for c in &self.comparisons {
                md.push_str(&format!("| {} | {} | {} | {:+.2} | {:.3} | {:+.2} | {:.3} |\n", c.against, c.direction, c.test_set, c.bleu_delta, c.bleu_p, c.chrf_delta, c.chrf_p));
            }
        }
    }

    /// Each system's trainable parameters, training speed and final dev loss.
    fn systems_table(&self, md: &mut String) {
        md.push_str("\n| system | trainable parameters | share | training tokens/s | final dev loss |\n|---|---|---|---|---|\n");
        let opt = |x: Option<f64>, digits: usize| x.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        for s in &self.systems {
            md.push_str(&format!("| {} | {} | {:.3} % | {} | {} |\n", s.name, s.trainable_parameters, 100.0 * s.trainable_share, opt(s.train_tokens_per_second, 1), opt(s.final_validation_loss, 4)));
        }
    }

    /// Forgetting: each system's held-out LM loss and its change against the baseline.
    fn forgetting_table(&self, md: &mut String) {
        if !self.lm_loss.is_empty() {
            md.push_str(&format!(
                "\nForgetting: mean next-token loss (nats) on held-out monolingual text, and its change against `{}` on the same sentences with a paired 95 % bootstrap interval (an interval above 0: forgotten).\n\n| system | language | sentences | LM loss | change | 95 % interval |\n|---|---|---|---|---|---|\n",
                self.baseline
            ));
            for r in &self.lm_loss {
                // Without per-sentence losses (records kept from before), the change has no interval.
                let base = self.lm_loss.iter().find(|b| b.system == self.baseline && b.language == r.language).filter(|_| r.system != self.baseline);
                let (change, interval) = match (r.change, base) {
                    (Some(c), _) => (format!("{:+.4}", c.delta), format!("[{:+.4}, {:+.4}]", c.low, c.high)),
                    (None, Some(b)) => (format!("{:+.4}", r.loss - b.loss), "–".to_string()),
                    (None, None) => ("–".to_string(), "–".to_string()),
                };
                md.push_str(&format!("| {} | {} | {} | {:.4} | {change} | {interval} |\n", r.system, r.language, r.sentences, r.loss));
            }
        }
    }

    /// One transfer matrix per test set (`[eval] transfer`).
    fn transfer_tables(&self, md: &mut String) {
        if let Some(m) = &self.transfer {
            for set in self.test_sets() {
                md.push_str(&format!(
                    "\nTransfer ({set}, BLEU): `{m}` fine-tuned on the row's direction alone, evaluated on each column's.\n\n| trained on | {} |\n|---|{}\n",
                    self.evaluated_directions.join(" | "),
                    "---|".repeat(self.evaluated_directions.len())
                ));
                for (label, system) in self.transfer_rows() {
                    let cells: Vec<String> = self.evaluated_directions.iter().map(|d| self.bleu(&system, d, &set).map_or("–".into(), |b| format!("{b:.2}"))).collect();
                    md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
                }
            }
        }
    }

    /// Each seeded method's mean ± standard deviation over its seeds, and the claims between
    /// them (`[eval] seeds`).
    fn seeds_table(&self, md: &mut String) {
        if self.seeds.is_empty() {
            return;
        }
        md.push_str("\nSeeds: BLEU mean ± standard deviation over each method's seeds.\n\n| method | seeds | direction | test set | mean | ± | per seed |\n|---|---|---|---|---|---|---|\n");
        for s in &self.seeds {
            let seeds = s.seeds.iter().join(", ");
            md.push_str(&format!("| {} | {seeds} | {} | {} | {:.2} | {:.2} | {} |\n", s.method, s.direction, s.test_set, s.mean, s.sd, s.bleu.iter().map(|b| format!("{b:.2}")).join(" / ")));
        }
        md.push_str("\nClaims between seeded methods: A − B per seed, the paired bootstrap on the pooled hypotheses, and whether \"A beats B\" (or B beats A) holds: the same sign on every seed and p < 0.05.\n\n| A | B | direction | test set | A − B per seed | pooled p | holds |\n|---|---|---|---|---|---|---|\n");
        for c in &self.seed_claims {
            let deltas = c.deltas.iter().map(|d| format!("{d:+.2}")).join(" / ");
            md.push_str(&format!("| {} | {} | {} | {} | {deltas} | {:.3} | {} |\n", c.system, c.against, c.direction, c.test_set, c.pooled_p, if c.holds { "yes" } else { "no" }));
        }
    }

    /// The effective training settings of every trained system.
    fn settings_table(&self, md: &mut String) {
        let trained: Vec<&SystemInfo> = self.systems.iter().filter(|s| s.settings.is_some()).collect();
        if trained.is_empty() {
            return;
        }
        md.push_str("\nTraining settings of each system (`[train]` with its `[train.methods.*]` overrides).\n\n| system | pairs/direction | lr | schedule | warm-up steps | weight decay | batch × accumulation | epochs | max length | seed | added weights |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for s in trained {
            let t = s.settings.as_ref().expect("filtered");
            let added = s.added.as_ref().map_or("–".to_string(), |a| {
                let targets: Vec<String> = a.lora_targets.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
                format!("LoRA r {} α {} on {}; adapter {}", a.lora_rank, a.lora_alpha, targets.join(" "), a.adapter_size)
            });
            md.push_str(&format!(
                "| {} | {} | {:e} | {:?} | {} | {} | {} × {} | {} | {} | {} | {added} |\n",
                s.name,
                s.pairs.map_or("–".to_string(), |p| p.to_string()),
                t.lr,
                t.schedule,
                t.warmup_steps,
                t.weight_decay,
                t.batch_size,
                t.grad_accum,
                t.epochs,
                t.max_len,
                t.seed
            ));
        }
    }

    /// The transfer matrix's rows as (label, system): the untuned model, the method trained on
    /// each direction alone, and on all of them, where evaluated.
    pub fn transfer_rows(&self) -> Vec<(String, String)> {
        let Some(m) = &self.transfer else { return Vec::new() };
        let evaluated = |s: &str| self.rows.iter().any(|r| r.system == s);
        let mut out = Vec::new();
        if evaluated("none") {
            out.push(("none (untuned)".to_string(), "none".to_string()));
        }
        for d in &self.trained_directions {
            out.push((d.clone(), format!("{m}@{d}")));
        }
        if evaluated(m) {
            out.push((format!("all ({m})"), m.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Report;

    /// Every committed report's Markdown is what its JSON renders to, so a change to the
    /// renderer that would change a published table shows here first.
    #[test]
    fn the_committed_reports_markdown_is_what_their_json_renders_to() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for dir in ["docs/study-en-fr", "results/en-fr-study"] {
            let json = std::fs::read_to_string(root.join(dir).join("report.json")).unwrap();
            let report: Report = serde_json::from_str(&json).unwrap();
            let md = std::fs::read_to_string(root.join(dir).join("report.md")).unwrap();
            assert!(report.markdown() == md, "{dir}/report.md is not what report.json renders to");
        }
    }
}
