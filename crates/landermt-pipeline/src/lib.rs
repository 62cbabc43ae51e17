//! The LANDeRMT pipeline as a library: what `cargo xtask pipeline` runs, for another program to
//! call.
//!
//! - [`config::RunConfig`]: a run config (TOML), checked on load with `file:line: key` errors.
//! - [`plan`]: the stages of a run (probe → score → route → train per system → eval), each with
//!   a key over its inputs; a stamped step whose key is unchanged is current and skipped.
//! - [`run::run`]: runs the steps that are not current, in order, stamping each.
//! - [`stages`]: one driver per stage, reading the config and the upstream artifacts and
//!   writing the stage's artifact atomically.
//! - [`sweep`]: one method trained and dev-scored at each value of one key.
//! - [`kept`]: a system whose delta is gone but recorded, and decoded, is not trained again.
//! - [`report::Report`]: `report.json` / `report.md`, what the eval stage writes.
//!
//! ```no_run
//! use landermt_pipeline::{config::RunConfig, run};
//! let cfg = RunConfig::load("configs/en-fr.toml".as_ref())?;
//! run::run(&cfg, &run::Options::default(), &mut |event| println!("{event}"))?;
//! # anyhow::Ok(())
//! ```

pub mod artifacts;
pub mod claims;
pub mod config;
pub mod device;
pub mod figures;
pub mod hash;
pub mod kept;
pub mod lock;
pub mod pairs;
pub mod plan;
pub mod report;
pub mod run;
pub mod seeds;
pub mod sittings;
pub mod stages;
pub mod sweep;
pub mod system;
pub mod table;

pub use config::RunConfig;
pub use device::{gemm_device, resolve_model};
pub use lock::RunLock;
pub use report::Report;
pub use run::{Event, Options, run, run_step};
pub use system::System;
