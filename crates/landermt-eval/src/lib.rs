//! # landermt-eval — stage 5: decoding, metrics and reports
//!
//! Greedy and beam decoding with the KV cache, BLEU and chrF computed exactly as sacreBLEU 2.x
//! (with its signature string), bootstrap confidence intervals, and the run's report
//! (METHOD.md stage 5).
//!
//! Status: placeholder until issue 5 lands.
