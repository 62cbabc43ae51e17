//! # landermt-metrics — BLEU, chrF and paired bootstrap, as sacreBLEU 2.6.0 computes them
//!
//! BLEU ([`bleu`]) and chrF/chrF++ ([`chrf`]) with sacreBLEU's tokenizers ([`tokenize`]) and
//! signature strings, and its bootstrap resampling ([`bootstrap`]: confidence intervals and
//! the paired significance test, numpy's generator reproduced), checked against scores the
//! sacreBLEU package produced on the same files (`tests/fixtures/bleu`). The crate needs no
//! model and no tensor backend: `landermt-eval` (stage 5) re-exports it for the pipeline.
//!
//! BLEU and chrF of a hypothesis file against its references:
//!
//! ```
//! let refs = vec!["The cat sleeps on the sofa.".to_string(), "It rains.".to_string()];
//! let hyps = vec!["The cat sleeps on the couch.".to_string(), "It rains.".to_string()];
//! let bleu = landermt_metrics::Bleu::for_target("en").corpus(&hyps, &refs);
//! let chrf = landermt_metrics::Chrf::CHRF.corpus(&hyps, &refs);
//! assert!(bleu.score > 50.0 && bleu.score < 100.0 && chrf > 50.0);
//! ```
//!
//! A system against a baseline, with sacreBLEU's `--paired-bs` p-value (1000 resamples, seed
//! 12345 as sacreBLEU's default):
//!
//! ```
//! # let refs = vec!["The cat sleeps on the sofa.".to_string(), "It rains.".to_string()];
//! let baseline = vec!["A cat sleeps.".to_string(), "Rain.".to_string()];
//! let system = vec!["The cat sleeps on the couch.".to_string(), "It rains.".to_string()];
//! let bleu = landermt_metrics::Bleu::for_target("en");
//! let (base, ours, p) = landermt_metrics::bootstrap::paired_bleu(&bleu, &refs, &baseline, &system, 1000, 12345);
//! assert!(ours > base && (0.0..=1.0).contains(&p));
//! ```

pub mod bleu;
pub mod bootstrap;
pub mod chrf;
pub mod tokenize;

pub use bleu::{Bleu, BleuScore, Smooth};
pub use chrf::Chrf;
pub use tokenize::Tokenize;

/// The sacreBLEU version whose definitions (and signature) our metrics reproduce.
pub const SACREBLEU_VERSION: &str = "2.6.0";
