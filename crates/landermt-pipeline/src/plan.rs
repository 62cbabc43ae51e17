//! Which pipeline stages are current. Each stage's inputs (its config section, the model, the
//! run's directions, and the upstream artifacts' bytes) are hashed into a key; when the stage
//! finishes, the key is stamped in `{run}/.stamps/{stage}`. A stage whose artifacts exist and
//! whose stamp matches its key is skipped.
//!
//! A run over several language pairs ([`crate::pairs`]) plans each pair's probe, route,
//! training and eval in the pair's folder, stamped there, around one score stage and a joint
//! report (`report`) in the run's folder.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::config::RunConfig;

/// The stages in order; `train:{system}` stands for one training run, and `decode:{system}`
/// (stage `eval`) for the decoding of one system, right after its training.
pub const STAGES: [&str; 5] = ["probe", "score", "route", "train", "eval"];

/// One planned unit of work.
#[derive(Debug, Clone)]
pub struct Step {
    /// `probe`, `score`, `route`, `train:{system}`, `decode:{system}`, `eval`, or `report` (the
    /// joint report of a run over several pairs).
    pub name: String,
    /// The stage it belongs to (one of [`STAGES`]).
    pub stage: &'static str,
    /// Files the step writes; all must exist for it to be current.
    pub artifacts: Vec<PathBuf>,
    /// The language pair it runs for, in a run over several pairs.
    pub pair: Option<String>,
}

impl Step {
    fn new(name: impl Into<String>, stage: &'static str, artifacts: Vec<PathBuf>) -> Self {
        Step { name: name.into(), stage, artifacts, pair: None }
    }

    /// `{pair}/{name}` for a pair's step, else its name: what logs and `--dry-run` show.
    pub fn label(&self) -> String {
        match &self.pair {
            Some(p) => format!("{p}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The config a step runs with: the pair's view for a pair's step.
pub fn scope<'a>(cfg: &'a RunConfig, step: &Step) -> Result<Cow<'a, RunConfig>> {
    match &step.pair {
        None => Ok(Cow::Borrowed(cfg)),
        Some(p) => Ok(Cow::Owned(cfg.for_pair(&cfg.pair(p)?))),
    }
}

/// How a key names the files it hashes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// By their full path: a stamp belongs to its run folder.
    Paths,
    /// By their file name only: equal keys mean equal inputs in any folder ([`content_key`]).
    FileNames,
}

fn hash_file(h: &mut Sha256, path: &Path, names: Names) {
    match names {
        Names::Paths => h.update(path.display().to_string().as_bytes()),
        Names::FileNames => h.update(path.file_name().unwrap_or_default().as_encoded_bytes()),
    }
    match std::fs::read(path) {
        Ok(bytes) => h.update(&bytes),
        Err(_) => h.update(b"(missing)"),
    }
}

/// The steps of a pipeline run: probe, score, route, a training run and a decoding per
/// evaluated system, eval; for a run over several pairs, see [`steps_of_pairs`].
pub fn steps(cfg: &RunConfig) -> Vec<Step> {
    if cfg.is_multi_pair() {
        return steps_of_pairs(cfg, None);
    }
    let mut out = vec![probe_step(cfg), score_step(cfg), route_step(cfg)];
    out.extend(system_steps(cfg));
    out.push(eval_step(cfg));
    out
}

/// Each evaluated system's training, then its decoding. Decoding a system as soon as it is
/// trained keeps its outputs when a long run stops before the last system: its delta can go
/// ([`crate::kept`]) and the eval stage only scores.
fn system_steps(cfg: &RunConfig) -> Vec<Step> {
    cfg.systems().into_iter().flat_map(|system| [train_step(cfg, system), decode_step(system)]).collect()
}

/// A run over several pairs: every pair's probe, the score stage, then per pair its route,
/// training runs and eval, then the joint report. `only` keeps the steps of those pairs (and
/// the joint ones).
pub fn steps_of_pairs(cfg: &RunConfig, only: Option<&[String]>) -> Vec<Step> {
    let pairs: Vec<_> = cfg.pairs().into_iter().filter(|p| only.is_none_or(|o| o.contains(&p.name))).collect();
    let of_pair = |name: &str, steps: Vec<Step>| -> Vec<Step> { steps.into_iter().map(|s| Step { pair: Some(name.to_string()), ..s }).collect() };
    let mut out: Vec<Step> = pairs.iter().flat_map(|p| of_pair(&p.name, vec![probe_step(&cfg.for_pair(p))])).collect();
    out.push(score_step(cfg));
    for p in &pairs {
        let view = cfg.for_pair(p);
        let mut steps = vec![route_step(&view)];
        steps.extend(system_steps(&view));
        steps.push(eval_step(&view));
        out.extend(of_pair(&p.name, steps));
    }
    let dir = &cfg.run.dir;
    out.push(Step::new("report", "eval", vec![dir.join("report.json"), dir.join("report.md")]));
    out
}

fn probe_step(cfg: &RunConfig) -> Step {
    Step::new("probe", "probe", vec![cfg.run.dir.join("layers.json")])
}

fn score_step(cfg: &RunConfig) -> Step {
    let dir = cfg.neurons_dir();
    let mut artifacts = vec![dir.join("neurons.json"), dir.join("neurons.safetensors")];
    if cfg.needs_lape() {
        artifacts.push(dir.join("lape.json"));
    }
    Step::new("score", "score", artifacts)
}

fn route_step(cfg: &RunConfig) -> Step {
    Step::new("route", "route", vec![cfg.run.dir.join(cfg.route_file())])
}

fn eval_step(cfg: &RunConfig) -> Step {
    let dir = &cfg.run.dir;
    Step::new("eval", "eval", vec![dir.join("report.json"), dir.join("report.md")])
}

/// The training run of `system` (evaluated or not), in `cfg`'s folder.
pub fn train_step(cfg: &RunConfig, system: crate::system::System) -> Step {
    let name = system.name();
    let artifacts = if system.method == landermt_train::Method::None { vec![] } else { vec![cfg.run.dir.join("train").join(&name).join("delta.safetensors")] };
    Step::new(format!("train:{name}"), "train", artifacts)
}

/// The decoding of `system` on every test set and LM-loss text of the eval stage. It has no
/// stamp: each output it writes carries the key of its own inputs.
pub fn decode_step(system: crate::system::System) -> Step {
    Step::new(format!("decode:{}", system.name()), "eval", vec![])
}

/// The system a `train:` or `decode:` step is for.
pub(crate) fn system_of(step: &Step) -> Result<Option<crate::system::System>> {
    let Some(name) = step.name.strip_prefix("train:").or_else(|| step.name.strip_prefix("decode:")) else { return Ok(None) };
    name.parse().map(Some).map_err(anyhow::Error::msg)
}

/// The key of `step`: everything its result depends on, as known now.
pub fn key(cfg: &RunConfig, step: &Step) -> Result<String> {
    key_naming(cfg, step, Names::Paths)
}

/// [`key`] without the run folder in it: two runs (a sweep's point and its base run) whose
/// steps have equal content keys would compute the same artifacts from the same bytes.
pub fn content_key(cfg: &RunConfig, step: &Step) -> Result<String> {
    key_naming(cfg, step, Names::FileNames)
}

fn key_naming(cfg: &RunConfig, step: &Step, names: Names) -> Result<String> {
    let cfg = &*scope(cfg, step)?;
    let mut h = Sha256::new();
    let dir = &cfg.run.dir;
    let neurons = cfg.neurons_dir();
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
            // LAPE's units for a `lape` system (keyed only then: other runs keep their key).
            if cfg.needs_lape() {
                h.update(b"lape.json");
                h.update(serde_json::to_vec(&cfg.score.lape)?);
            }
            // Over several pairs it scores every layer, whatever the pairs selected.
            if !cfg.is_multi_pair() {
                hash_file(&mut h, &dir.join("layers.json"), names);
            }
        }
        "route" => {
            h.update(serde_json::to_vec(&cfg.route)?);
            hash_file(&mut h, &dir.join("layers.json"), names);
            hash_file(&mut h, &neurons.join("neurons.json"), names);
            hash_file(&mut h, &neurons.join("neurons.safetensors"), names);
        }
        "train" => {
            // The method's own settings: overriding one method's lr retrains only that method.
            let system = system_of(step)?.expect("a training step names its system");
            h.update(serde_json::to_vec(&cfg.train_for(system.method))?);
            if let Some(seed) = system.seed {
                h.update(format!("seed {seed}").as_bytes());
            }
            h.update(serde_json::to_vec(&cfg.prompt)?);
            hash_file(&mut h, &dir.join("layers.json"), names);
            hash_file(&mut h, &dir.join(cfg.route_file()), names);
            hash_file(&mut h, &neurons.join("neurons.json"), names);
        }
        _ if step.name == "report" => {
            for p in cfg.pairs() {
                hash_file(&mut h, &crate::pairs::pair_dir(cfg, &p.name).join("report.json"), names);
            }
        }
        _ => {
            h.update(serde_json::to_vec(&cfg.eval)?);
            h.update(serde_json::to_vec(&cfg.eval.cross)?);
            h.update(serde_json::to_vec(&cfg.prompt)?);
            // The delta by its hash, which outlives the file (crate::kept).
            for system in cfg.systems() {
                h.update(crate::kept::delta_sha256(cfg, system)?.as_deref().unwrap_or("(missing)").as_bytes());
            }
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `.stamps/{step}` in the step's folder (the pair's, for a pair's step).
fn stamp(cfg: &RunConfig, step: &Step) -> Result<PathBuf> {
    Ok(scope(cfg, step)?.run.dir.join(".stamps").join(step.name.replace(':', "-")))
}

/// Whether `step`'s artifacts exist and were made from the inputs it would use now.
pub fn is_current(cfg: &RunConfig, step: &Step) -> Result<bool> {
    if step.name.starts_with("decode:") {
        let system = system_of(step)?.expect("a decoding step names its system");
        return crate::stages::is_decoded(&*scope(cfg, step)?, system);
    }
    if !step.artifacts.iter().all(|a| a.exists()) && !stands_in(cfg, step)? {
        return Ok(false);
    }
    Ok(std::fs::read_to_string(stamp(cfg, step)?).is_ok_and(|s| s.trim() == key(cfg, step).unwrap_or_default()))
}

/// Whether `step` is a training run whose delta is gone but kept as a record, with its
/// system's decoded outputs current ([`crate::kept`]).
fn stands_in(cfg: &RunConfig, step: &Step) -> Result<bool> {
    match system_of(step)? {
        Some(system) if step.stage == "train" => system_stands_in(&*scope(cfg, step)?, system),
        _ => Ok(false),
    }
}

/// Records that `step` finished with its current inputs.
pub fn mark_done(cfg: &RunConfig, step: &Step) -> Result<()> {
    if step.name.starts_with("decode:") {
        return Ok(()); // no stamp: see decode_step
    }
    let k = key(cfg, step)?;
    landermt_model::atomic::write_atomic(&stamp(cfg, step)?, |w| w.write_all(k.as_bytes()))?;
    Ok(())
}

/// Whether `system`'s delta is gone but stands recorded, with every hypothesis and LM loss the
/// eval stage needs from it decoded from that delta: then it need not be trained again.
fn system_stands_in(cfg: &RunConfig, system: crate::system::System) -> Result<bool> {
    let dir = crate::kept::train_dir(cfg, system);
    if !dir.join(crate::kept::RECORD).exists() || !cfg.systems().contains(&system) {
        return Ok(false);
    }
    crate::stages::is_decoded(cfg, system)
}
