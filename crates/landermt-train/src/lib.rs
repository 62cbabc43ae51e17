//! # landermt-train — stage 4: selective fine-tuning and the baselines
//!
//! Updates only the rows and columns of the language-aware neurons (or, for the baselines,
//! every parameter, LoRA or adapters), keeping every other entry bit-identical, with resumable
//! atomic checkpoints (METHOD.md stage 4).
//!
//! Status: placeholder until issue 4 lands.
