//! # landermt-eval — stage 5: decoding, metrics and reports
//!
//! Decoding for evaluation ([`decode`]: greedy or beam, the newline rule of docs/METHOD.md)
//! and the off-target rate ([`langid`]). The metrics — BLEU, chrF/chrF++ and sacreBLEU's
//! bootstrap — live in `landermt-metrics`, which needs no model or tensor backend; they are
//! re-exported here under their old paths.
//!
//! Stage 5 on the tiny fixture model: greedy translations of two FLORES lines, scored with
//! sacreBLEU's BLEU for the target language:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use landermt_data::{Direction, ParallelSource, read_parallel};
//! use landermt_eval::decode::{DecodeOptions, translate};
//! let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
//! let model = landermt_model::LanguageModel::load(format!("{root}/tests/fixtures/hf-tiny/llama-tiny"), &burn::tensor::Device::flex())?;
//! let direction: Direction = "en-fr".parse()?;
//! let source = ParallelSource::Flores { dir: format!("{root}/data/flores200-devtest").into(), first: 1, last: 2 };
//! let pairs = read_parallel(&source, direction)?;
//! let (sources, refs): (Vec<String>, Vec<String>) = pairs.into_iter().map(|p| (p.src, p.tgt)).unzip();
//! let opts = DecodeOptions { max_new_tokens: 8, ..Default::default() };
//! let hyps = translate(&model, direction, &sources, &opts, &|_| {})?;
//! let bleu = landermt_eval::Bleu::for_target("fr").corpus(&hyps, &refs);
//! assert_eq!(hyps.len(), 2);
//! assert!((0.0..=100.0).contains(&bleu.score)); // a random tiny model: the number means nothing
//! # Ok(()) }
//! ```

pub mod decode;
pub mod langid;

pub use landermt_metrics::{Bleu, BleuScore, Chrf, SACREBLEU_VERSION, Smooth, Tokenize, bleu, bootstrap, chrf, tokenize};
