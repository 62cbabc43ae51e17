//! Which pipeline stages are current. Each stage's inputs (its config section, the model, the
//! run's directions, and the upstream artifacts' bytes) are hashed into a key; when the stage
//! finishes, the key is stamped in `{run}/.stamps/{stage}`. A stage whose artifacts exist and
//! whose stamp matches its key is skipped.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::config::RunConfig;

/// The stages in order; `train:{system}` stands for one training run.
pub const STAGES: [&str; 5] = ["probe", "score", "route", "train", "eval"];

/// One planned unit of work.
#[derive(Debug, Clone)]
pub struct Step {
    /// `probe`, `score`, `route`, `train:{method}` or `eval`.
    pub name: String,
    /// The stage it belongs to (one of [`STAGES`]).
    pub stage: &'static str,
    /// Files the step writes; all must exist for it to be current.
    pub artifacts: Vec<PathBuf>,
}

fn hash_file(h: &mut Sha256, path: &Path) {
    h.update(path.display().to_string().as_bytes());
    match std::fs::read(path) {
        Ok(bytes) => h.update(&bytes),
        Err(_) => h.update(b"(missing)"),
    }
}

/// The steps of a pipeline run: probe, score, route, a training run per evaluated system, eval.
pub fn steps(cfg: &RunConfig) -> Vec<Step> {
    let dir = &cfg.run.dir;
    let mut out = vec![
        Step { name: "probe".into(), stage: "probe", artifacts: vec![dir.join("layers.json")] },
        Step { name: "score".into(), stage: "score", artifacts: vec![dir.join("neurons.json"), dir.join("neurons.safetensors")] },
        Step { name: "route".into(), stage: "route", artifacts: vec![dir.join("route.json")] },
    ];
    out.extend(cfg.systems().into_iter().map(|system| train_step(cfg, system)));
    out.push(Step { name: "eval".into(), stage: "eval", artifacts: vec![dir.join("report.json"), dir.join("report.md")] });
    out
}

/// The training run of `system` (evaluated or not).
pub fn train_step(cfg: &RunConfig, system: crate::system::System) -> Step {
    let name = system.name();
    let artifacts = if system.method == landermt_train::Method::None { vec![] } else { vec![cfg.run.dir.join("train").join(&name).join("delta.safetensors")] };
    Step { name: format!("train:{name}"), stage: "train", artifacts }
}

/// The key of `step`: everything its result depends on, as known now.
pub fn key(cfg: &RunConfig, step: &Step) -> Result<String> {
    let mut h = Sha256::new();
    let dir = &cfg.run.dir;
    h.update(serde_json::to_vec(&cfg.model)?);
    h.update(serde_json::to_vec(&cfg.run.directions)?);
    // A cached model is identified by its name; a path by its size too.
    if let Some(p) = &cfg.model.path {
        h.update(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0).to_le_bytes());
    }
    h.update(step.name.as_bytes());
    match step.stage {
        "probe" => h.update(serde_json::to_vec(&cfg.probe)?),
        "score" => {
            h.update(serde_json::to_vec(&cfg.score)?);
            hash_file(&mut h, &dir.join("layers.json"));
        }
        "route" => {
            h.update(serde_json::to_vec(&cfg.route)?);
            hash_file(&mut h, &dir.join("neurons.json"));
            hash_file(&mut h, &dir.join("neurons.safetensors"));
        }
        "train" => {
            // The method's own settings: overriding one method's lr retrains only that method.
            let system: crate::system::System = step.name.trim_start_matches("train:").parse().map_err(anyhow::Error::msg)?;
            h.update(serde_json::to_vec(&cfg.train_for(system.method))?);
            h.update(serde_json::to_vec(&cfg.prompt)?);
            hash_file(&mut h, &dir.join("layers.json"));
            hash_file(&mut h, &dir.join("route.json"));
            hash_file(&mut h, &dir.join("neurons.json"));
        }
        _ => {
            h.update(serde_json::to_vec(&cfg.eval)?);
            h.update(serde_json::to_vec(&cfg.prompt)?);
            for system in cfg.systems() {
                hash_file(&mut h, &dir.join("train").join(system.name()).join("delta.safetensors"));
            }
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn stamp(cfg: &RunConfig, step: &Step) -> PathBuf {
    cfg.run.dir.join(".stamps").join(step.name.replace(':', "-"))
}

/// Whether `step`'s artifacts exist and were made from the inputs it would use now.
pub fn is_current(cfg: &RunConfig, step: &Step) -> Result<bool> {
    if !step.artifacts.iter().all(|a| a.exists()) {
        return Ok(false);
    }
    Ok(std::fs::read_to_string(stamp(cfg, step)).is_ok_and(|s| s.trim() == key(cfg, step).unwrap_or_default()))
}

/// Records that `step` finished with its current inputs.
pub fn mark_done(cfg: &RunConfig, step: &Step) -> Result<()> {
    let k = key(cfg, step)?;
    landermt_model::atomic::write_atomic(&stamp(cfg, step), |w| w.write_all(k.as_bytes()))?;
    Ok(())
}
