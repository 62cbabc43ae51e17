//! # landermt-probe — stage 1: language-pair-relevant layers
//!
//! Runs translation prompts (source sentence and its reference) through the model, takes the
//! signed mean of each block's output `A_i`, and ranks the blocks by
//! `D_i = |mean_n A_{i,n} − mean_n A_{i+1,n}|` (METHOD.md eq. 1). The top-k rule selects the
//! layers that stages 2–4 work on, written as the versioned artifact `layers.json`.
//!
//! Status: the crate is a placeholder until issue 3 lands; it exists so the workspace has its
//! final shape.
