//! Running the stages from a run config: read inputs, call the stage's library, write its
//! artifact atomically into the run directory.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use landermt_data::{Direction, read_monolingual, read_parallel};
use landermt_model::LanguageModel;
use landermt_score::{Partial, Settings};

use crate::config::RunConfig;
use crate::system::System;

mod eval;
mod probe;
mod route;
mod score;
#[cfg(test)]
pub(crate) mod tests;
mod train;

pub use eval::{DecodedFile, decode, eval, is_decoded};
pub use probe::probe;
pub use route::route;
pub use score::score;
pub use train::{Routing, export, train, trained_model};

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}").expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    landermt_model::atomic::write_atomic(path, |w| w.write_all(&json))?;
    Ok(())
}

/// Redraws the run's figures; a figure that cannot be drawn is not worth failing a stage.
fn figures(cfg: &RunConfig) {
    match crate::figures::write_all(&cfg.run.dir) {
        Ok(_) => println!("  figures: {}", cfg.run.dir.join("figures").display()),
        Err(e) => tracing::warn!("figures not drawn: {e:#}"),
    }
}

/// Reads `layers.json` of the run, naming the command that makes it when it is missing.
pub fn read_layers(cfg: &RunConfig) -> Result<landermt_probe::Layers> {
    let layers: landermt_probe::Layers = read_artifact(cfg, "layers.json", "probe")?;
    if layers.version != landermt_probe::LAYERS_VERSION {
        bail!("{}: schema version {}, this build reads {}; run the probe again", cfg.run.dir.join("layers.json").display(), layers.version, landermt_probe::LAYERS_VERSION);
    }
    Ok(layers)
}

/// Reads a JSON artifact of the run, naming the command that makes it when it is missing.
/// `neurons.json` is read from the folder that holds it (the run's, for a pair of a run over
/// several pairs).
fn read_artifact<T: serde::de::DeserializeOwned>(cfg: &RunConfig, file: &str, stage: &str) -> Result<T> {
    let dir = if file.starts_with("neurons.") { cfg.neurons_dir() } else { &cfg.run.dir };
    let path = dir.join(file);
    read_optional(&path)?.with_context(|| format!("{}: missing; run `cargo xtask {stage} --config …` first", path.display()))
}

/// The JSON artifact at `path`, or `None` where it is not written yet. A file that is there but
/// does not parse is an error naming it, never taken for a missing one.
pub(crate) fn read_optional<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file = path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            serde_json::from_slice(&bytes).map(Some).with_context(|| format!("{}: not a valid {file}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

/// The last validation loss of a `train.json`.
pub fn final_validation_loss(train: &serde_json::Value) -> Option<f64> {
    train["validation_loss"].as_array()?.last()?[1].as_f64()
}
