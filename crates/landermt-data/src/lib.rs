//! # landermt-data
//!
//! What several stages read: the languages (ISO 639-1 codes, names for prompts, FLORES-200
//! file names), translation directions, and parallel corpora — a `source<TAB>target` TSV, two
//! aligned text files, or a line range of FLORES-200 — and monolingual text per language, with errors that name the file and line.

pub mod corpus;
pub mod lang;
pub mod mix;
pub mod prompt;

pub use corpus::{CorpusError, MonoSource, Pair, ParallelSource, read_monolingual, read_parallel};
pub use lang::{Direction, Language};
pub use mix::mix;
