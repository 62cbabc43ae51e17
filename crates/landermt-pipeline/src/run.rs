//! Running a run config's plan: every step that is not current, in order, each stamped when it
//! finishes, so that a killed run resumes where it stopped.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use landermt_model::Backend;

use crate::config::RunConfig;
use crate::plan::{self, STAGES, Step};
use crate::stages;
use crate::system::System;

/// Which steps to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report the plan without running anything.
    pub dry_run: bool,
    /// Run every step, current or not.
    pub force: bool,
    /// Run this stage and every later one, current or not.
    pub from: Option<String>,
    /// Run only this stage.
    pub only: Option<String>,
    /// In a run over several language pairs, run only these pairs' steps (and the shared
    /// score stage and joint report).
    pub pairs: Option<Vec<String>>,
}

/// What a run reports as it goes; its `Display` is the line `cargo xtask pipeline` prints.
#[derive(Debug, Clone)]
pub enum Event {
    /// A fact about the run before any step: the model, the GEMM kernel, the directions.
    Header(String),
    /// A problem that does not stop a dry run.
    Note(String),
    /// In a dry run: what would happen to a step.
    Planned { step: String, what: &'static str },
    /// A step found current.
    Skipped { step: String, at: f64 },
    /// A step started.
    Running { step: String, at: f64 },
    /// A step finished in `seconds`.
    Done { step: String, at: f64, seconds: f64 },
    /// The run finished; `ran_any` is false when every step was current.
    Finished { ran_any: bool, seconds: f64, report: PathBuf },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Header(line) => write!(f, "{line}"),
            Event::Note(msg) => write!(f, "  note: {msg}"),
            Event::Planned { step, what } => write!(f, "  {step:<22} {what}"),
            Event::Skipped { step, at } => write!(f, "[{at:>7.1}s] {step:<22} current, skipped"),
            Event::Running { step, at } => write!(f, "[{at:>7.1}s] {step:<22} running"),
            Event::Done { step, at, seconds } => write!(f, "[{at:>7.1}s] {step:<22} done in {seconds:.1}s"),
            Event::Finished { ran_any: false, report, .. } => write!(f, "every stage is current; the report is {}", report.display()),
            Event::Finished { seconds, report, .. } => write!(f, "pipeline finished in {seconds:.1}s; the report is {}", report.display()),
        }
    }
}

fn stage_index(stage: &str) -> usize {
    STAGES.iter().position(|x| *x == stage).expect("known stage")
}

impl Options {
    fn check(&self) -> Result<()> {
        for s in [&self.from, &self.only].into_iter().flatten() {
            if !STAGES.contains(&s.as_str()) {
                bail!("unknown stage `{s}` (stages: {})", STAGES.join(", "));
            }
        }
        Ok(())
    }

    fn selects(&self, stage: &str) -> bool {
        match (&self.only, &self.from) {
            (Some(o), _) => stage == o,
            (None, Some(f)) => stage_index(stage) >= stage_index(f),
            (None, None) => true,
        }
    }

    fn forces(&self, stage: &str) -> bool {
        self.force || self.only.is_some() || self.from.as_deref().is_some_and(|f| stage_index(stage) >= stage_index(f))
    }
}

/// Runs the plan of `cfg` as `options` select, reporting each step to `on_event`.
pub fn run(cfg: &RunConfig, options: &Options, on_event: &mut dyn FnMut(Event)) -> Result<()> {
    options.check()?;
    header(cfg, options, on_event)?;
    let _lock = if options.dry_run { None } else { Some(crate::lock::RunLock::acquire(cfg.lock_dir())?) };
    let steps = match &options.pairs {
        Some(names) => {
            let pairs: Vec<String> = cfg.select_pairs(names).map_err(|e| anyhow::anyhow!("{}: --pairs: {e}", cfg.source.display()))?.into_iter().map(|p| p.name).collect();
            if cfg.is_multi_pair() { plan::steps_of_pairs(cfg, Some(&pairs)) } else { plan::steps(cfg) }
        }
        None => plan::steps(cfg),
    };
    let started = Instant::now();
    let mut ran_any = false;
    for step in steps {
        let selected = options.selects(step.stage);
        // A stage after one that ran is re-checked: its key includes the upstream artifacts.
        let current = !options.forces(step.stage) && plan::is_current(cfg, &step)?;
        let at = started.elapsed().as_secs_f64();
        if options.dry_run {
            let what = if !selected {
                "skip (not selected)"
            } else if current {
                "current, skip"
            } else {
                "run"
            };
            on_event(Event::Planned { step: step.label(), what });
            continue;
        }
        if !selected {
            continue;
        }
        if current {
            on_event(Event::Skipped { step: step.label(), at });
            continue;
        }
        let t0 = Instant::now();
        on_event(Event::Running { step: step.label(), at });
        run_step(cfg, &step)?;
        plan::mark_done(cfg, &step)?;
        ran_any = true;
        on_event(Event::Done { step: step.label(), at: started.elapsed().as_secs_f64(), seconds: t0.elapsed().as_secs_f64() });
    }
    if !options.dry_run {
        on_event(Event::Finished { ran_any, seconds: started.elapsed().as_secs_f64(), report: cfg.run.dir.join("report.md") });
    }
    Ok(())
}

/// The run's header: model, GEMM kernel, directions and pairs.
fn header(cfg: &RunConfig, options: &Options, on_event: &mut dyn FnMut(Event)) -> Result<()> {
    on_event(Event::Header(format!("run `{}` → {}", cfg.run.name, cfg.run.dir.display())));
    on_event(Event::Header(format!("  model: {} on {}", cfg.model.describe(), cfg.model.backend)));
    if options.dry_run {
        if let (Some(name), None) = (&cfg.model.name, &cfg.model.path)
            && cfg.model.resolve(false).map_or(true, |p| !p.exists())
        {
            // Kept outputs are keyed by the model's hash: without the model they cannot be checked.
            on_event(Event::Note(format!(
                "{name} is not in the model cache, so decoding steps (and training steps kept without their weights) show as `run` even where their outputs are kept; a real run fetches it first (`cargo xtask fetch-model {name}`) and skips them"
            )));
        }
    } else {
        preflight(cfg)?;
        if cfg.model.backend == Backend::Flex {
            on_event(Event::Header(format!("  f32 GEMM: {}", landermt_model::blas::current())));
        }
    }
    on_event(Event::Header(format!("  directions: {}", cfg.run.directions.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))));
    if cfg.is_multi_pair() {
        let pairs: Vec<String> = cfg.pairs().into_iter().map(|p| p.name).collect();
        on_event(Event::Header(format!("  pairs: {} (each in {}/pairs/{{pair}}/)", pairs.join(", "), cfg.run.dir.display())));
    }
    Ok(())
}

/// What the machine must have before any step runs: the model's file or folder, and the
/// backend (compiled in, with a device).
fn preflight(cfg: &RunConfig) -> Result<()> {
    if let Some(p) = &cfg.model.path
        && !p.exists()
    {
        bail!("{}: [model] path: {} does not exist on this machine", cfg.source.display(), p.display());
    }
    if cfg.model.path.is_none() {
        // Fetched before any step, so every step's check sees the model (kept outputs are keyed by its hash).
        cfg.model.resolve(true).map_err(|e| anyhow::anyhow!("{}: [model] name: {e:#}", cfg.source.display()))?;
    }
    cfg.model.device().map_err(|e| anyhow::anyhow!("{}: [model] backend = \"{}\": {e:#}", cfg.source.display(), cfg.model.backend))?;
    Ok(())
}

/// Runs one planned step (without stamping it).
pub fn run_step(cfg: &RunConfig, step: &Step) -> Result<()> {
    let cfg = &*plan::scope(cfg, step)?;
    match step.stage {
        "probe" => stages::probe(cfg),
        "score" => stages::score(cfg),
        "route" => stages::route(cfg),
        "train" => stages::train(cfg, system_of(step)?),
        _ if step.name.starts_with("decode:") => stages::decode(cfg, system_of(step)?),
        _ if step.name == "report" => {
            crate::table::write(cfg)?;
            // The joint report's figures (transfer across pairs, every pair's curves).
            if let Err(e) = crate::figures::write_all(&cfg.run.dir) {
                tracing::warn!("figures not drawn: {e:#}");
            }
            Ok(())
        }
        _ => stages::eval(cfg),
    }
}

/// The system of a `train:` or `decode:` step.
fn system_of(step: &Step) -> Result<System> {
    plan::system_of(step)?.ok_or_else(|| anyhow::anyhow!("step `{}` names no system", step.name))
}

/// Stamps `step` (a stage name, or `train:{system}`) as done, so that the pipeline finds it
/// current: what running a stage alone (`cargo xtask probe`, `train`, …) ends with.
pub fn mark(cfg: &RunConfig, step: &str) -> Result<()> {
    if let Some(system) = step.strip_prefix("train:") {
        // Evaluated by the pipeline or not: a sweep reads the stamp too.
        let system: System = system.parse().map_err(anyhow::Error::msg)?;
        return plan::mark_done(cfg, &plan::train_step(cfg, system));
    }
    match plan::steps(cfg).into_iter().find(|s| s.name == step) {
        Some(s) => plan::mark_done(cfg, &s),
        None => Ok(()),
    }
}

/// The system named by `method` (default `train.method`) and `direction`, which must be one
/// of the run's.
pub fn system_arg(cfg: &RunConfig, method: Option<&str>, direction: Option<&str>) -> Result<System> {
    let method = match method {
        Some(m) => m.parse::<landermt_train::Method>().map_err(anyhow::Error::msg)?,
        None => cfg.train.method,
    };
    let only = match direction {
        None => None,
        Some(d) => {
            let d: landermt_data::Direction = d.parse().map_err(|e| anyhow::anyhow!("--direction {d}: {e}"))?;
            if !cfg.directions().contains(&d) {
                bail!("--direction {d}: not one of the run's directions ({})", cfg.run.directions.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "));
            }
            Some(d)
        }
    };
    Ok(System { only, ..System::all(method) })
}
