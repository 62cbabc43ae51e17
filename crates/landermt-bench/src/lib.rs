//! # landermt-bench — how fast, against what
//!
//! - [`bench`]: `cargo xtask bench`, the workloads a user compares us on (prefill, decoding,
//!   translation, training per method, probe, score), each in a child process of its own,
//!   optionally beside the same workloads in PyTorch (`bench/torch_reference.py`); ratios in
//!   one sitting, as BENCHMARKS.md reports them.
//! - [`device_check`]: `cargo xtask device-check`, parity and timings of the GPU backends on a
//!   GPU machine.
//! - [`steady`]: steady-state timing for GPU backends (warm-up until settled, device syncs,
//!   the median of five rounds with its spread).
//! - `benches/kernels.rs`: criterion benchmarks of the CPU kernels inside those workloads
//!   (`cargo bench -p landermt-bench`; BENCHMARKS.md, "Kernel benchmarks").

pub mod bench;
pub mod device_check;
pub mod steady;
