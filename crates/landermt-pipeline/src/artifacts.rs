//! The run's JSON artifacts: written atomically, read back with an error that names the file
//! and, where it is missing, the command that makes it.

use anyhow::{Context, Result};

use crate::config::RunConfig;

/// `value` as pretty JSON at `path`, atomically (a killed write leaves the old file).
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    landermt_model::atomic::write_atomic(path, |w| w.write_all(&json))?;
    Ok(())
}

/// Reads a JSON artifact of the run, naming the command that makes it when it is missing.
/// `neurons.json` is read from the folder that holds it (the run's, for a pair of a run over
/// several pairs).
pub fn read_artifact<T: serde::de::DeserializeOwned>(cfg: &RunConfig, file: &str, stage: &str) -> Result<T> {
    let dir = if file.starts_with("neurons.") { cfg.neurons_dir() } else { &cfg.run.dir };
    let path = dir.join(file);
    read_optional(&path)?.with_context(|| format!("{}: missing; run `cargo xtask {stage} --config …` first", path.display()))
}

/// The JSON artifact at `path`, or `None` where it is not written yet. A file that is there but
/// does not parse is an error naming it, never taken for a missing one.
pub fn read_optional<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file = path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            serde_json::from_slice(&bytes).map(Some).with_context(|| format!("{}: not a valid {file}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}
