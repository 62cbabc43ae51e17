//! # landermt-data
//!
//! What several stages read: the languages (ISO 639-1 codes, names for prompts, FLORES-200
//! file names), translation directions, and parallel corpora — a `source<TAB>target` TSV, two
//! aligned text files, or a line range of FLORES-200 — with errors that name the file and line.

pub mod corpus;
pub mod lang;

pub use corpus::{CorpusError, Pair, ParallelSource, read_parallel};
pub use lang::{Direction, Language};
