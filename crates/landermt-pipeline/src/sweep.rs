//! `cargo xtask sweep`: one method trained at every value of one config key, each grid point a
//! run of its own under `{run}/sweep/{method}/{key}/{value}/`, scored on the dev set (never a
//! test set): the final dev loss, and BLEU/chrF of the dev lines decoded.
//!
//! Stages upstream of the changed key run once, in the base run's directory, and their
//! artifacts are copied into each point; only the changed stage and those after it run per
//! point. Every step is stamped as in the pipeline and the dev scores are kept next to the
//! point, so a killed sweep run again resumes where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use landermt_train::Method;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::plan::{self, Step};
use crate::system::System;

/// `--set section.key=v1,v2,…`: the key and each value as written and as TOML.
#[derive(Debug, Clone)]
pub struct Grid {
    pub section: String,
    pub field: String,
    pub values: Vec<(String, toml::Value)>,
}

impl Grid {
    /// Values are TOML literals (`1e-4`, `4`, `"taylor"`); a bare word is read as a string.
    pub fn parse(arg: &str) -> Result<Self> {
        let (key, values) = arg.split_once('=').with_context(|| format!("--set {arg}: expected section.key=value1,value2,…"))?;
        let (section, field) = key.trim().split_once('.').with_context(|| format!("--set {arg}: the key needs its section, e.g. train.lr"))?;
        if !["probe", "score", "route", "train", "prompt"].contains(&section) {
            bail!("--set {arg}: a sweep changes [probe], [score], [route], [train] or [prompt] keys (it scores on dev, so [eval] keys change nothing)");
        }
        let values: Vec<(String, toml::Value)> = split_values(values)
            .into_iter()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                let parsed = toml::from_str::<toml::Table>(&format!("v = {v}")).ok().and_then(|mut t| t.remove("v"));
                let label = match &parsed {
                    // `[15, 16,17]` and `[15,16,17]` are one point: label a list by its items.
                    Some(toml::Value::Array(items)) => format!("[{}]", items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
                    _ => v.trim_matches('"').to_string(),
                };
                (label, parsed.unwrap_or_else(|| toml::Value::String(v.to_string())))
            })
            .collect();
        if values.is_empty() {
            bail!("--set {arg}: no values");
        }
        Ok(Self { section: section.into(), field: field.into(), values })
    }

    pub fn key(&self) -> String {
        format!("{}.{}", self.section, self.field)
    }

    /// The pipeline stage the key belongs to: the first one a change of it makes stale.
    fn stage(&self) -> &'static str {
        match self.section.as_str() {
            "probe" => "probe",
            "score" => "score",
            "route" => "route",
            _ => "train",
        }
    }
}

/// The stages `method` reads the artifacts of, in order.
fn stages_for(method: Method) -> &'static [&'static str] {
    match method {
        Method::Landermt | Method::LandermtLs | Method::LandermtLg => &["probe", "score", "route", "train"],
        // The selected layers are read by every method (`layers` trains them).
        _ => &["probe", "train"],
    }
}

fn stage_index(stage: &str) -> usize {
    plan::STAGES.iter().position(|s| *s == stage).expect("known stage")
}

/// The directory of the sweep of `key` for `method`.
pub fn sweep_dir(base: &RunConfig, method: Method, key: &str) -> PathBuf {
    base.run.dir.join("sweep").join(method.name()).join(key)
}

/// The base config with `grid`'s key set to `value`, running in the point's own directory.
/// `[train]` keys are set in `[train.methods.{method}]`, so they win over its overrides.
pub fn point_config(config_path: &Path, base: &RunConfig, method: Method, grid: &Grid, value: &(String, toml::Value)) -> Result<RunConfig> {
    let mut table = toml::Table::try_from(base).context("the config as TOML")?;
    let section = table.entry(grid.section.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
    let target = if grid.section == "train" {
        let methods = section.as_table_mut().expect("a section").entry("methods").or_insert_with(|| toml::Value::Table(Default::default()));
        methods.as_table_mut().expect("a table").entry(method.name()).or_insert_with(|| toml::Value::Table(Default::default()))
    } else {
        section
    };
    target.as_table_mut().expect("a table").insert(grid.field.clone(), value.1.clone());
    let dir = sweep_dir(base, method, &grid.key()).join(sanitize(&value.0));
    let run = table.get_mut("run").and_then(toml::Value::as_table_mut).expect("[run]");
    run.insert("dir".into(), toml::Value::String(dir.display().to_string()));
    run.insert("name".into(), toml::Value::String(format!("{} {} {}={}", base.run.name, method.name(), grid.key(), value.0)));
    let text = toml::to_string(&table).context("the grid point's config as TOML")?;
    let label = PathBuf::from(format!("{} (--set {}={})", config_path.display(), grid.key(), value.0));
    RunConfig::parse(&text, &label)
}

/// A value as a directory name.
fn sanitize(value: &str) -> String {
    // A list (`[0,1,2]`) names its folder `0-1-2`.
    value
        .chars()
        .filter(|c| !"[]".contains(*c))
        .map(|c| {
            if c.is_alphanumeric() || "-_.+".contains(c) {
                c
            } else if c == ',' {
                '-'
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits `--set` values at the commas outside brackets and quotes, so a list such as
/// `probe.layers=[0,1,2],[15,16,17]` is two values.
fn split_values(values: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quoted, mut start) = (Vec::new(), 0usize, false, 0);
    for (i, c) in values.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                out.push(&values[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&values[start..]);
    out
}

/// A grid point's dev scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub value: String,
    pub dir: String,
    /// The last validation loss of training (none for `none`).
    pub dev_loss: Option<f64>,
    /// Mean over the run's directions.
    pub dev_bleu: f64,
    pub dev_chrf: f64,
    pub directions: Vec<DevScore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevScore {
    pub direction: String,
    pub lines: usize,
    pub bleu: f64,
    pub chrf: f64,
    /// The decoded dev lines, relative to the point's directory (none in points decoded before
    /// they were kept).
    #[serde(default)]
    pub hypotheses: Option<String>,
    /// sacreBLEU's paired-bootstrap p of this point's BLEU against the best point's, on the same
    /// resamplings; none for the best point itself, or without both points' hypotheses.
    #[serde(default)]
    pub p_vs_best: Option<f64>,
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    pub run: String,
    pub method: String,
    pub key: String,
    pub dev_lines: usize,
    pub criterion: String,
    pub best: String,
    pub points: Vec<Point>,
}

/// How the best point is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    /// Highest mean dev BLEU over the run's directions; ties go to the lower dev loss.
    #[default]
    Bleu,
    /// Lowest final dev loss (less noisy than BLEU on a few dev lines); ties go to higher BLEU.
    Loss,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bleu" => Ok(By::Bleu),
            "loss" => Ok(By::Loss),
            other => Err(format!("unknown criterion `{other}` (bleu, loss)")),
        }
    }
}

/// What a sweep did: the report, the steps it ran and the steps it took from the base run
/// (each `{dir} {step}`), for logs and tests.
pub struct Outcome {
    pub report: SweepReport,
    pub ran: Vec<String>,
    pub adopted: Vec<String>,
}

/// Runs the sweep; `max_points` stops after that many points (a stand-in for a kill, in tests).
pub fn run(config_path: &Path, base: &RunConfig, method: Method, grid: &Grid, dev_lines: Option<usize>, by: By, max_points: Option<usize>) -> Result<Outcome> {
    let _lock = crate::lock::RunLock::acquire(base.lock_dir())?;
    let changed = grid.stage();
    let needed = stages_for(method);
    let (mut ran, mut adopted) = (Vec::new(), Vec::new());
    // Upstream of the changed key: once, in the base run.
    for step in plan::steps(base).iter().filter(|s| needed.contains(&s.stage) && stage_index(s.stage) < stage_index(changed)) {
        ensure(base, step, &mut ran)?;
    }
    let mut points = Vec::new();
    for value in grid.values.iter().take(max_points.unwrap_or(usize::MAX)) {
        let cfg = point_config(config_path, base, method, grid, value)?;
        println!("sweep {} {}={} → {}", method.name(), grid.key(), value.0, cfg.run.dir.display());
        let upstream = plan::steps(&cfg).into_iter().filter(|s| s.stage != "train" && needed.contains(&s.stage));
        let n = dev_lines.unwrap_or(cfg.train_for(method).dev_pairs);
        for step in upstream.chain([plan::train_step(&cfg, System::all(method))]) {
            if step.stage == "train" && kept_point(&cfg, method, n)? {
                continue;
            }
            if stage_index(step.stage) < stage_index(changed) {
                adopt(base, &cfg, &step)?;
            } else if same_as_base(base, &cfg, &step)? {
                // The point at the base run's own value: nothing to compute again.
                adopt(base, &cfg, &step)?;
                adopted.push(format!("{} {}", cfg.run.dir.display(), step.name));
            } else {
                if step.stage == "score" {
                    // Per-language awareness does not depend on ε: reuse the base run's.
                    copy_dir(&base.run.dir.join("score"), &cfg.run.dir.join("score"))?;
                }
                ensure(&cfg, &step, &mut ran)?;
            }
        }
        points.push(dev_point(&cfg, method, &value.0, n)?);
    }
    let mut report = report(base, method, grid, dev_lines, by, points);
    p_values_against_best(base, method, &mut report)?;
    if max_points.is_none_or(|m| m >= grid.values.len()) {
        write(&sweep_dir(base, method, &grid.key()), &report, grid)?;
    }
    Ok(Outcome { report, ran, adopted })
}

/// Runs `step` of `cfg` unless it is current.
fn ensure(cfg: &RunConfig, step: &Step, ran: &mut Vec<String>) -> Result<()> {
    if plan::is_current(cfg, step)? {
        return Ok(());
    }
    crate::run::run_step(cfg, step)?;
    plan::mark_done(cfg, step)?;
    ran.push(format!("{} {}", cfg.run.dir.display(), step.name));
    Ok(())
}

/// Whether the base run has `step` current, with its artifacts there, computed from the same
/// bytes as the point would use (equal [`plan::content_key`]s): the grid value the base run
/// already uses, so the point can take its artifacts instead of computing them again.
fn same_as_base(base: &RunConfig, cfg: &RunConfig, step: &Step) -> Result<bool> {
    if plan::is_current(cfg, step)? {
        return Ok(false);
    }
    let in_base = Step { artifacts: step.artifacts.iter().map(|a| rebase(base, cfg, a)).collect(), ..step.clone() };
    if !in_base.artifacts.iter().all(|a| a.exists()) || !plan::is_current(base, &in_base)? {
        return Ok(false);
    }
    Ok(plan::content_key(base, &in_base)? == plan::content_key(cfg, step)?)
}

/// The path in the base run of a point's artifact.
fn rebase(base: &RunConfig, cfg: &RunConfig, artifact: &Path) -> PathBuf {
    base.run.dir.join(artifact.strip_prefix(&cfg.run.dir).expect("artifacts lie in the run directory"))
}

/// Copies the base run's artifacts of `step` into the point and stamps them there. A training
/// step brings its record (`train.json`, the loss curve, the delta's hash) but not its
/// checkpoint, which only a resumed run reads.
fn adopt(base: &RunConfig, cfg: &RunConfig, step: &Step) -> Result<()> {
    if plan::is_current(cfg, step)? {
        return Ok(());
    }
    let mut files = step.artifacts.clone();
    if let Some(system) = plan::system_of(step)?.filter(|_| step.stage == "train") {
        let dir = crate::kept::train_dir(base, system);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}: the base run's training", dir.display()))? {
            let entry = entry?;
            let to = crate::kept::train_dir(cfg, system).join(entry.file_name());
            if entry.file_type()?.is_file() && !files.contains(&to) && entry.file_name() != "checkpoint.safetensors" {
                files.push(to);
            }
        }
    }
    for to in &files {
        link_or_copy(&rebase(base, cfg, to), to)?;
    }
    plan::mark_done(cfg, step)
}

/// `to` made a hard link of `from` (a copy across file systems), replacing it atomically.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.parent().expect("a file in a directory"))?;
    let tmp = to.with_extension("adopting");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).with_context(|| format!("{}: the base run's artifact", from.display()))?;
    }
    std::fs::rename(&tmp, to).with_context(|| format!("{}: replacing it", to.display()))?;
    Ok(())
}

/// Copies the files of `from` (if it exists) into `to`, keeping files already there.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir_all(to)?;
    for entry in entries {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_file() && !dest.exists() {
            std::fs::copy(entry.path(), &dest).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A point's dev scores, kept in `dev.json` with the key of what they were decoded from.
#[derive(Serialize, Deserialize)]
struct SavedPoint {
    key: String,
    point: Point,
}

/// The key of a point's dev scores: its delta (or the delta's kept hash, crate::kept) and the
/// decoding inputs.
fn dev_key(cfg: &RunConfig, method: Method, n: usize) -> Result<String> {
    let delta_sha = if method == Method::None { "-".to_string() } else { crate::kept::delta_sha256(cfg, System::all(method))?.unwrap_or_default() };
    let t = cfg.train_for(method);
    Ok(crate::hash::sha256(format!("{delta_sha}\n{}\n{n}\n{:?}\n{}\n{}", cfg.eval_template(), t.dev, cfg.eval.max_new_tokens, cfg.model.describe()).as_bytes()))
}

/// The point's saved dev scores, if decoded from the same inputs.
fn saved_point(cfg: &RunConfig, key: &str) -> Option<Point> {
    let saved: SavedPoint = serde_json::from_slice(&std::fs::read(cfg.run.dir.join("dev.json")).ok()?).ok()?;
    (saved.key == key).then_some(saved.point)
}

/// Whether a point's delta is gone but recorded, with its dev scores decoded from it: then it
/// is not trained again.
fn kept_point(cfg: &RunConfig, method: Method, n: usize) -> Result<bool> {
    let dir = crate::kept::train_dir(cfg, System::all(method));
    if method == Method::None || dir.join(crate::kept::DELTA).exists() || !dir.join(crate::kept::RECORD).exists() {
        return Ok(false);
    }
    Ok(saved_point(cfg, &dev_key(cfg, method, n)?).is_some())
}

/// The point's dev scores, decoded again only when its weights or decoding inputs changed.
fn dev_point(cfg: &RunConfig, method: Method, value: &str, n: usize) -> Result<Point> {
    let system = System::all(method);
    let path = cfg.run.dir.join("dev.json");
    let key = dev_key(cfg, method, n)?;
    let t = cfg.train_for(method);
    if let Some(point) = saved_point(cfg, &key) {
        return Ok(point);
    }
    let model = crate::stages::trained_model(cfg, system)?.into_decoding();
    let opts = landermt_eval::decode::DecodeOptions {
        template: cfg.eval_template().clone(),
        max_new_tokens: cfg.eval.max_new_tokens,
        batch_size: cfg.eval.batch_size,
        newline: cfg.eval.newline,
        no_repeat_ngram: cfg.eval.no_repeat_ngram,
        ..Default::default()
    };
    let routing = crate::stages::Routing::of(cfg, system)?;
    let mut sets = Vec::new();
    for direction in cfg.directions() {
        let mut pairs = landermt_data::read_parallel(&t.dev, direction)?;
        pairs.truncate(n);
        sets.push((direction, pairs.iter().map(|p| p.src.clone()).collect::<Vec<_>>(), pairs.into_iter().map(|p| p.tgt).collect::<Vec<_>>()));
    }
    // The directions one routing reads decode as one stream: a few dev lines per direction
    // would otherwise be a batch of stragglers each.
    let mut hyps = vec![Vec::new(); sets.len()];
    let directions: Vec<landermt_data::Direction> = sets.iter().map(|(d, ..)| *d).collect();
    for group in routing.streams(&directions) {
        let routed = routing.for_direction(&model, sets[group[0]].0);
        let jobs: Vec<landermt_eval::decode::Job> = group.iter().map(|&i| landermt_eval::decode::Job { direction: sets[i].0, sources: &sets[i].1, shots: &[] }).collect();
        for (&i, out) in group.iter().zip(landermt_eval::decode::Decoder::new(&routed, &opts).translate_all(&jobs, &|_| {})?) {
            hyps[i] = out.lines;
        }
    }
    let mut directions = Vec::new();
    for ((direction, _, refs), hyps) in sets.iter().zip(hyps) {
        let file = format!("dev/{direction}.hyp");
        let text: String = hyps.iter().map(|h| format!("{h}\n")).collect();
        std::fs::create_dir_all(cfg.run.dir.join("dev"))?;
        landermt_model::atomic::write_atomic(&cfg.run.dir.join(&file), |w| w.write_all(text.as_bytes()))?;
        let (bleu, chrf) = (landermt_eval::Bleu::for_target(direction.tgt.code).corpus(&hyps, refs).score, landermt_eval::Chrf::CHRF.corpus(&hyps, refs));
        directions.push(DevScore { direction: direction.to_string(), lines: refs.len(), bleu, chrf, hypotheses: Some(file), p_vs_best: None });
    }
    let mean = |f: fn(&DevScore) -> f64| directions.iter().map(f).sum::<f64>() / directions.len().max(1) as f64;
    let dev_loss = if method == Method::None { None } else { final_dev_loss(&crate::kept::train_dir(cfg, system).join("train.json")) };
    let point = Point { value: value.to_string(), dir: cfg.run.dir.display().to_string(), dev_loss, dev_bleu: mean(|d| d.bleu), dev_chrf: mean(|d| d.chrf), directions };
    let bytes = serde_json::to_vec_pretty(&SavedPoint { key, point: point.clone() })?;
    landermt_model::atomic::write_atomic(&path, |w| w.write_all(&bytes))?;
    Ok(point)
}

fn final_dev_loss(train_json: &Path) -> Option<f64> {
    crate::stages::final_validation_loss(&serde_json::from_slice(&std::fs::read(train_json).ok()?).ok()?)
}

/// The report, with the best point by `by`.
fn report(base: &RunConfig, method: Method, grid: &Grid, dev_lines: Option<usize>, by: By, points: Vec<Point>) -> SweepReport {
    let loss = |p: &Point| p.dev_loss.unwrap_or(f64::INFINITY);
    let bleu_first = |a: &&Point, b: &&Point| a.dev_bleu.total_cmp(&b.dev_bleu).then(loss(b).total_cmp(&loss(a)));
    let loss_first = |a: &&Point, b: &&Point| loss(b).total_cmp(&loss(a)).then(a.dev_bleu.total_cmp(&b.dev_bleu));
    let best = match by {
        By::Bleu => points.iter().max_by(bleu_first),
        By::Loss => points.iter().max_by(loss_first),
    };
    let criterion = match by {
        By::Bleu => "highest mean dev BLEU over the run's directions; ties go to the lower dev loss",
        By::Loss => "lowest final dev loss; ties go to the higher mean dev BLEU",
    };
    SweepReport {
        run: base.run.name.clone(),
        method: method.name().to_string(),
        key: grid.key(),
        dev_lines: dev_lines.unwrap_or(base.train_for(method).dev_pairs),
        criterion: criterion.into(),
        best: best.map(|p| p.value.clone()).unwrap_or_default(),
        points,
    }
}

/// Fills each point's [`DevScore::p_vs_best`]: the paired bootstrap of the eval report
/// (`eval.n_bootstrap` resamplings, seed 12345) on each direction's dev lines.
fn p_values_against_best(base: &RunConfig, method: Method, r: &mut SweepReport) -> Result<()> {
    use landermt_eval::bootstrap::{bleu_samples, paired_p_value, sample_indices};
    let Some(best) = r.points.iter().position(|p| p.value == r.best) else { return Ok(()) };
    for direction in base.directions() {
        let mut refs: Vec<String> = landermt_data::read_parallel(&base.train_for(method).dev, direction)?.into_iter().map(|p| p.tgt).collect();
        refs.truncate(r.dev_lines);
        let bleu = landermt_eval::Bleu::for_target(direction.tgt.code);
        let idx = sample_indices(refs.len(), base.eval.n_bootstrap, 12345);
        // Each point's (corpus BLEU, resampled BLEUs), when its hypotheses are kept.
        let scored: Vec<Option<(f64, Vec<f64>)>> = r
            .points
            .iter()
            .map(|p| {
                let d = p.directions.iter().find(|d| d.direction == direction.to_string())?;
                let text = std::fs::read_to_string(Path::new(&p.dir).join(d.hypotheses.as_ref()?)).ok()?;
                let hyps: Vec<String> = text.lines().map(str::to_string).collect();
                let stats = (hyps.len() == refs.len()).then(|| bleu.all_stats(&hyps, &refs))?;
                Some((bleu.score_stats(&landermt_eval::bleu::sum(&stats)).score, bleu_samples(&stats, &idx)))
            })
            .collect();
        let Some((best_score, best_samples)) = scored[best].clone() else { continue };
        for (i, s) in scored.iter().enumerate().filter(|(i, _)| *i != best) {
            let Some((score, samples)) = s else { continue };
            if let Some(d) = r.points[i].directions.iter_mut().find(|d| d.direction == direction.to_string()) {
                d.p_vs_best = Some(paired_p_value(&best_samples, samples, best_score, *score, false));
            }
        }
    }
    Ok(())
}

/// `sweep.json`, `sweep.md`, and dev BLEU and dev loss against the value (`sweep-bleu`,
/// `sweep-loss`, CSV + SVG), on a log scale when the values are positive numbers spanning a
/// factor of ten or more, in grid order when they are not numbers.
fn write(dir: &Path, r: &SweepReport, grid: &Grid) -> Result<()> {
    let json = serde_json::to_vec_pretty(r)?;
    landermt_model::atomic::write_atomic(&dir.join("sweep.json"), |w| w.write_all(&json))?;
    let mut md = format!(
        "# Sweep of `{}` for `{}` ({})\n\nScored on the first {} dev lines of each direction (`train.dev`), never a test set. Best: **{} = {}** ({}). p: sacreBLEU's paired bootstrap of each point's BLEU against the best point's.\n\n| {} | dev loss | dev BLEU | dev chrF |",
        r.key, r.method, r.run, r.dev_lines, r.key, r.best, r.criterion, r.key
    );
    let directions: Vec<String> = r.points.first().map(|p| p.directions.iter().map(|d| d.direction.clone()).collect()).unwrap_or_default();
    for d in &directions {
        md.push_str(&format!(" BLEU {d} |"));
    }
    md.push_str(&format!("\n|---|---|---|---|{}\n", "---|".repeat(directions.len())));
    for p in &r.points {
        let per: String = p.directions.iter().map(|d| format!(" {:.2}{} |", d.bleu, d.p_vs_best.map_or(String::new(), |p| format!(" (p {p:.3})")))).collect();
        md.push_str(&format!("| {} | {} | {:.2} | {:.2} |{per}\n", p.value, p.dev_loss.map_or("–".into(), |l| format!("{l:.4}")), p.dev_bleu, p.dev_chrf));
    }
    landermt_model::atomic::write_atomic(&dir.join("sweep.md"), |w| w.write_all(md.as_bytes()))?;
    let (xs, label) = axis(grid, r);
    let chart = |stem: &str, what: &str, ys: Vec<Option<f64>>| -> Result<()> {
        let points: Vec<(f64, f64)> = xs.iter().zip(ys).filter_map(|(&x, y)| Some((x, y?))).collect();
        landermt_plot::LineChart::new(format!("{} against {} ({})", what, r.key, r.method), label.clone(), what).series(what, points).write(dir, stem)?;
        Ok(())
    };
    chart("sweep-bleu", "dev BLEU", r.points.iter().map(|p| Some(p.dev_bleu)).collect())?;
    chart("sweep-loss", "dev loss", r.points.iter().map(|p| p.dev_loss).collect())?;
    Ok(())
}

/// The x coordinates of the points and the axis label.
fn axis(grid: &Grid, r: &SweepReport) -> (Vec<f64>, String) {
    let numbers: Option<Vec<f64>> = r.points.iter().map(|p| grid.values.iter().find(|v| v.0 == p.value).and_then(|v| v.1.as_float().or(v.1.as_integer().map(|i| i as f64)))).collect();
    match numbers {
        Some(x) if x.iter().all(|&v| v > 0.0) && x.iter().cloned().fold(f64::MIN, f64::max) >= 9.99 * x.iter().cloned().fold(f64::MAX, f64::min) => {
            (x.iter().map(|v| v.log10()).collect(), format!("log10 {}", r.key))
        }
        Some(x) => (x, r.key.clone()),
        None => ((0..r.points.len()).map(|i| i as f64).collect(), format!("{} (grid order: {})", r.key, r.points.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_toml_values_and_refuse_keys_a_sweep_cannot_change() {
        let g = Grid::parse("train.lr=1e-5, 3e-5,1e-4").unwrap();
        assert_eq!((g.key(), g.stage()), ("train.lr".to_string(), "train"));
        assert_eq!(g.values.iter().map(|v| v.1.as_float().unwrap()).collect::<Vec<_>>(), [1e-5, 3e-5, 1e-4]);
        let car = Grid::parse("route.car=taylor,\"off\"").unwrap();
        assert_eq!(car.values.iter().map(|v| (v.0.as_str(), v.1.as_str().unwrap())).collect::<Vec<_>>(), [("taylor", "taylor"), ("off", "off")]);
        assert_eq!(Grid::parse("probe.k=2,4").unwrap().values[1].1.as_integer(), Some(4));
        let given = Grid::parse("probe.layers=[0,1,2], [15, 16,17]").unwrap();
        let blocks = |v: &toml::Value| v.as_array().unwrap().iter().map(|b| b.as_integer().unwrap()).collect::<Vec<_>>();
        assert_eq!(given.values.iter().map(|v| blocks(&v.1)).collect::<Vec<_>>(), [vec![0, 1, 2], vec![15, 16, 17]]);
        assert_eq!(given.values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), ["[0,1,2]", "[15,16,17]"]);
        assert_eq!(given.values.iter().map(|v| sanitize(&v.0)).collect::<Vec<_>>(), ["0-1-2", "15-16-17"]);
        for (arg, want) in [("eval.beams=1,2", "[eval] keys change nothing"), ("lr=1e-4", "needs its section"), ("train.lr", "expected section.key="), ("train.lr=", "no values")] {
            let err = format!("{:#}", Grid::parse(arg).unwrap_err());
            assert!(err.contains(want), "{arg}: {err}");
        }
    }

    #[test]
    fn a_point_sets_its_key_for_its_method_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut base = crate::stages::tests::quick(dir.path());
        base.train.methods.insert(Method::Lora, toml::toml! { lr = 0.5 });
        let path = Path::new("quick.toml");
        let grid = Grid::parse("train.lr=1e-3").unwrap();
        let point = point_config(path, &base, Method::Lora, &grid, &grid.values[0]).unwrap();
        assert_eq!(point.train_for(Method::Lora).lr, 1e-3, "the swept value wins over the method's own override");
        assert_eq!(point.train_for(Method::Full).lr, base.train.lr);
        assert_eq!(point.run.dir, dir.path().join("sweep/lora/train.lr/1e-3"));
        let car = Grid::parse("route.car=off").unwrap();
        assert_eq!(point_config(path, &base, Method::Landermt, &car, &car.values[0]).unwrap().route.car, landermt_model::nn::CarMode::Off);
        for arg in ["train.lrr=1", "probe.kk=2", "route.car=sometimes"] {
            let grid = Grid::parse(arg).unwrap();
            let err = format!("{:#}", point_config(path, &base, Method::Lora, &grid, &grid.values[0]).unwrap_err());
            assert!(err.contains(&format!("--set {arg}")), "{arg}: {err}");
        }
    }

    /// The steps of an outcome without the scratch directory.
    fn ran(out: &Outcome, root: &Path) -> Vec<String> {
        out.ran.iter().map(|r| r.replace(&format!("{}/", root.display()), "").replace(&root.display().to_string(), ".")).collect()
    }

    #[test]
    fn a_joint_sweep_scores_every_direction_each_with_its_pairs_routing() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::stages::tests::quick_joint(dir.path());
        let grid = Grid::parse("train.lr=1e-2").unwrap();
        let out = run(Path::new("quick-joint.toml"), &base, Method::Landermt, &grid, Some(1), By::Bleu, None).unwrap();
        assert!(out.ran.iter().any(|s| s.ends_with("route")), "{:?}", out.ran);
        let report: SweepReport = serde_json::from_slice(&std::fs::read(dir.path().join("sweep/landermt/train.lr/sweep.json")).unwrap()).unwrap();
        let directions: Vec<&str> = report.points[0].directions.iter().map(|d| d.direction.as_str()).collect();
        assert_eq!(directions, ["en-fr", "fr-en", "en-de", "de-en"]);
        // The point's model reads en→de with en–de's routing and fr→en with en–fr's.
        let point = RunConfig { run: crate::config::RunSection { dir: report.points[0].dir.clone().into(), ..base.run.clone() }, ..base.clone() };
        let system = System::all(Method::Landermt);
        let model = crate::stages::trained_model(&point, system).unwrap();
        let routing = crate::stages::Routing::of(&point, system).unwrap();
        let routes: landermt_route::Routes = serde_json::from_slice(&std::fs::read(dir.path().join("routes.json")).unwrap()).unwrap();
        let layer = routes.routes[0].layers[0].layer;
        let specific = |d: &str| -> Vec<usize> {
            let m = routing.for_direction(&model, d.parse().unwrap());
            let v: Vec<f32> = m.net.layers[layer].mlp.router.as_ref().unwrap().masks.specific.clone().into_data().try_into_vec().unwrap();
            v.iter().enumerate().filter(|(_, x)| **x > 0.0).map(|(i, _)| i).collect()
        };
        assert_eq!(specific("en-de"), routes.routes[1].layers[0].specific);
        assert_eq!(specific("fr-en"), routes.routes[0].layers[0].specific);
        assert_ne!(routes.routes[0].layers[0].specific, routes.routes[1].layers[0].specific);
    }

    #[test]
    fn an_lr_sweep_reuses_probe_and_score_and_resumes_after_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::stages::tests::quick(dir.path());
        let grid = Grid::parse("train.lr=1e-2,3e-2").unwrap();
        let path = Path::new("quick.toml");
        // Killed after its first point: the upstream stages ran once, in the base run.
        let first = run(path, &base, Method::Landermt, &grid, Some(2), By::Bleu, Some(1)).unwrap();
        assert_eq!(ran(&first, dir.path()), [". probe", ". score", ". route", "sweep/landermt/train.lr/1e-2 train:landermt"]);
        let sweep = dir.path().join("sweep/landermt/train.lr");
        assert!(!sweep.join("sweep.json").exists());
        // Run again: only the second point trains; probe, score and route are not run again.
        let second = run(path, &base, Method::Landermt, &grid, Some(2), By::Bleu, None).unwrap();
        assert_eq!(ran(&second, dir.path()), ["sweep/landermt/train.lr/3e-2 train:landermt"]);
        let third = run(path, &base, Method::Landermt, &grid, Some(2), By::Bleu, None).unwrap();
        assert!(third.ran.is_empty(), "{:?}", third.ran);
        // Each point trained at its own rate, was scored on 2 dev lines of both directions.
        for (value, lr) in [("1e-2", 1e-2), ("3e-2", 3e-2)] {
            let train: serde_json::Value = serde_json::from_slice(&std::fs::read(sweep.join(value).join("train/landermt/train.json")).unwrap()).unwrap();
            assert_eq!(train["settings"]["lr"].as_f64(), Some(lr));
        }
        let report: SweepReport = serde_json::from_slice(&std::fs::read(sweep.join("sweep.json")).unwrap()).unwrap();
        assert_eq!(report.points.iter().map(|p| p.value.as_str()).collect::<Vec<_>>(), ["1e-2", "3e-2"]);
        assert!(report.points.iter().all(|p| p.dev_loss.is_some_and(f64::is_finite) && p.directions.len() == 2 && p.directions.iter().all(|d| d.lines == 2)));
        let best = report.points.iter().find(|p| p.value == report.best).unwrap();
        assert!(report.points.iter().all(|p| p.dev_bleu <= best.dev_bleu));
        // The dev lines are kept, and every point but the best has a p-value against it.
        for p in &report.points {
            for d in &p.directions {
                let hyps = std::fs::read_to_string(Path::new(&p.dir).join(d.hypotheses.as_ref().unwrap())).unwrap();
                assert_eq!(hyps.lines().count(), 2, "{}: {}", p.value, d.direction);
                assert_eq!(d.p_vs_best.is_some(), p.value != report.best, "{}: {:?}", p.value, d.p_vs_best);
                assert!(d.p_vs_best.is_none_or(|x| x > 0.0 && x <= 1.0), "{:?}", d.p_vs_best);
            }
        }
        // By dev loss instead: every point is reused, and the lowest loss is named.
        let by_loss = run(path, &base, Method::Landermt, &grid, Some(2), By::Loss, None).unwrap();
        assert!(by_loss.ran.is_empty());
        let best = by_loss.report.points.iter().find(|p| p.value == by_loss.report.best).unwrap();
        assert!(by_loss.report.points.iter().all(|p| p.dev_loss >= best.dev_loss));
        for f in ["sweep.md", "sweep-bleu.svg", "sweep-bleu.csv", "sweep-loss.svg"] {
            assert!(sweep.join(f).exists(), "{f}");
        }
        // Kept without its weights (crate::kept): no point trains again, the scores are the same.
        for value in ["1e-2", "3e-2"] {
            let train = sweep.join(value).join("train/landermt");
            std::fs::remove_file(train.join("delta.safetensors")).unwrap();
            std::fs::remove_file(train.join("checkpoint.safetensors")).unwrap();
        }
        let kept = run(path, &base, Method::Landermt, &grid, Some(2), By::Loss, None).unwrap();
        assert!(kept.ran.is_empty(), "{:?}", kept.ran);
        assert_eq!(serde_json::to_value(&kept.report.points).unwrap(), serde_json::to_value(&by_loss.report.points).unwrap());
        // Other dev lines need the weights: the points train again.
        let more = run(path, &base, Method::Landermt, &grid, Some(1), By::Loss, None).unwrap();
        assert_eq!(ran(&more, dir.path()), ["sweep/landermt/train.lr/1e-2 train:landermt", "sweep/landermt/train.lr/3e-2 train:landermt"]);
    }

    #[test]
    fn a_point_at_the_base_runs_value_takes_the_base_runs_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::stages::tests::quick(dir.path());
        let path = Path::new("quick.toml");
        let system = System::all(Method::Landermt);
        let mut done = Vec::new();
        let steps = plan::steps(&base).into_iter().filter(|s| ["probe", "score", "route"].contains(&s.stage));
        for step in steps.chain([plan::train_step(&base, system)]) {
            ensure(&base, &step, &mut done).unwrap();
        }
        // quick.toml trains at 1e-2: that point is the base run's training, not trained again.
        let lr = run(path, &base, Method::Landermt, &Grid::parse("train.lr=1e-2,3e-2").unwrap(), Some(1), By::Bleu, None).unwrap();
        assert_eq!(ran(&lr, dir.path()), ["sweep/landermt/train.lr/3e-2 train:landermt"]);
        assert_eq!(lr.adopted.iter().map(|a| a.replace(&format!("{}/", dir.path().display()), "")).collect::<Vec<_>>(), ["sweep/landermt/train.lr/1e-2 train:landermt"]);
        let point = dir.path().join("sweep/landermt/train.lr/1e-2/train/landermt");
        let base_train = crate::kept::train_dir(&base, system);
        assert_eq!(std::fs::read(point.join("delta.safetensors")).unwrap(), std::fs::read(base_train.join("delta.safetensors")).unwrap());
        assert!(!point.join("checkpoint.safetensors").exists());
        assert_eq!(lr.report.points[0].dev_loss, final_dev_loss(&base_train.join("train.json")));
        // A route sweep: `taylor` (the base's CAR) takes the base's route and training; `off`
        // routes and trains.
        let car = run(path, &base, Method::Landermt, &Grid::parse("route.car=taylor,off").unwrap(), Some(1), By::Bleu, None).unwrap();
        assert_eq!(ran(&car, dir.path()), ["sweep/landermt/route.car/off route", "sweep/landermt/route.car/off train:landermt"]);
        assert_eq!(car.adopted.len(), 2, "{:?}", car.adopted);
        // A base run whose inputs differ from the point's is not taken: the same value with
        // another seed trains.
        let mut other = base.clone();
        other.train.seed += 1;
        let seed = run(path, &other, Method::Landermt, &Grid::parse("train.lr=1e-2").unwrap(), Some(1), By::Bleu, None).unwrap();
        assert!(seed.adopted.is_empty(), "{:?}", seed.adopted);
    }
}
