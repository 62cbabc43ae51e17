//! # landermt-score — stage 2: language awareness of neurons
//!
//! Reads ∂L/∂h through zero probe leaves at every scored module (METHOD.md eq. 2–3), sums the
//! Taylor score `|∂L/∂h · h|` per language, splits each module's units into language-general
//! and language-specific by the variance across languages (ε = 0.9), and writes
//! `neurons.safetensors` and `neurons.json`.
//!
//! Status: placeholder until issue 3 lands.
