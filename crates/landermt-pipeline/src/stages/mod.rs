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
mod export;
#[cfg(test)]
mod export_tests;
mod probe;
mod route;
mod score;
#[cfg(test)]
pub(crate) mod tests;
mod train;

pub use eval::{DecodedFile, decode, eval, is_decoded};
pub use export::{Format, export};
pub use probe::probe;
pub use route::route;
pub use score::score;
pub use train::{Routing, train, trained_model};

use crate::artifacts::{read_artifact, read_optional, write_json};

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}").expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
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

/// The last validation loss of a `train.json`.
pub fn final_validation_loss(train: &serde_json::Value) -> Option<f64> {
    train["validation_loss"].as_array()?.last()?[1].as_f64()
}
