//! # landermt-route — stage 3: conditional awareness-based routing (CAR)
//!
//! Splits the FFN of each selected layer into the general branch (G ∪ O) and the specific
//! branch (S) and mixes them with CAR (METHOD.md eq. 4–5), writing `route.json`.
//!
//! Status: placeholder until issue 4 lands.
