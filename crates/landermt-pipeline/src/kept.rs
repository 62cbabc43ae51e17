//! Results kept without their weights.
//!
//! A trained delta (a gigabyte for `full`) is rarely worth keeping once its system is decoded,
//! and a run folder copied to another machine, or committed, leaves it behind. So training
//! records the delta's SHA-256 in `delta.sha256` beside it, and everything downstream (the
//! eval key, the hypothesis and LM-loss files) names the delta by that hash. A system whose
//! delta is gone but whose record is kept counts as trained while its decoded outputs are
//! current; when they are not (say the decoding settings changed), it is trained again.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::RunConfig;
use crate::system::System;

/// The trained weights of a system, in its training folder.
pub const DELTA: &str = "delta.safetensors";
/// The SHA-256 of [`DELTA`], written after it.
pub const RECORD: &str = "delta.sha256";

/// `{run}/train/{system}`.
pub fn train_dir(cfg: &RunConfig, system: System) -> PathBuf {
    cfg.run.dir.join("train").join(system.name())
}

/// The SHA-256 of a system's delta: the record when it is kept, else the file's own; `None`
/// when neither is there.
pub fn delta_sha256(cfg: &RunConfig, system: System) -> Result<Option<String>> {
    let dir = train_dir(cfg, system);
    if let Some(sha) = recorded(&dir) {
        return Ok(Some(sha));
    }
    let delta = dir.join(DELTA);
    if !delta.exists() {
        return Ok(None);
    }
    Ok(Some(crate::hash::sha256_path(&delta)?))
}

/// Whether [`delta_sha256`] finds a hash, without hashing the delta.
pub fn has_delta(cfg: &RunConfig, system: System) -> bool {
    let dir = train_dir(cfg, system);
    recorded(&dir).is_some() || dir.join(DELTA).exists()
}

/// The SHA-256 recorded in `dir`, if the record is there and holds one.
fn recorded(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    let sha = text.trim();
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(sha.to_string());
    }
    tracing::warn!(file = %dir.join(RECORD).display(), "not a SHA-256; hashing the delta instead");
    None
}

/// Removes the record before training writes a new delta: a record never names an older one.
pub fn forget(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(RECORD)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", dir.join(RECORD).display())),
        _ => Ok(()),
    }
}

/// Records the SHA-256 of the delta training just wrote in `dir`.
pub fn record(dir: &Path) -> Result<()> {
    let sha = crate::hash::sha256_path(&dir.join(DELTA))?;
    landermt_model::atomic::write_atomic(&dir.join(RECORD), |w| w.write_all(format!("{sha}\n").as_bytes()))?;
    Ok(())
}
