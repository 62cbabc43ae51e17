//! # landermt-eval — stage 5: decoding, metrics and reports
//!
//! Metrics first: BLEU ([`bleu`]) and chrF/chrF++ ([`chrf`]) computed as sacreBLEU 2.6.0
//! computes them, with its tokenizers ([`tokenize`]) and signature strings, checked against
//! scores produced by the sacreBLEU package (tests/fixtures/bleu).
//!
//! Status: decoding for evaluation, bootstrap resampling, `cargo xtask eval`/`bleu` and the
//! reports are next (issue 5).
//!
//! BLEU and chrF of a hypothesis file against its references, as sacreBLEU scores them:
//!
//! ```
//! let refs = vec!["The cat sleeps on the sofa.".to_string(), "It rains.".to_string()];
//! let hyps = vec!["The cat sleeps on the couch.".to_string(), "It rains.".to_string()];
//! let bleu = landermt_eval::Bleu::for_target("en").corpus(&hyps, &refs);
//! let chrf = landermt_eval::Chrf::CHRF.corpus(&hyps, &refs);
//! assert!(bleu.score > 50.0 && bleu.score < 100.0 && chrf > 50.0);
//! ```

pub mod bleu;
pub mod bootstrap;
pub mod chrf;
pub mod decode;
pub mod langid;
pub mod tokenize;

pub use bleu::{Bleu, BleuScore, Smooth};
pub use chrf::Chrf;
pub use tokenize::Tokenize;

/// The sacreBLEU version whose definitions (and signature) our metrics reproduce.
pub const SACREBLEU_VERSION: &str = "2.6.0";
