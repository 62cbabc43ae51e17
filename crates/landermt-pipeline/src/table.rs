//! The joint report of a run over several language pairs (the paper's Table 1): every
//! direction as a column, every system as a row, the mean, and each pair's layers, routes and
//! forgetting side by side. Built from the pairs' own `report.json`, `layers.json` and
//! `route.json`; written as `{run}/report.json` and `{run}/report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use itertools::Itertools;
use serde::{Deserialize, Serialize};

use crate::artifacts::read_optional;
use crate::config::RunConfig;
use crate::pairs::pair_dir;
use crate::report::{LmRow, Report};

/// Bumped when a field changes meaning or goes away.
pub const JOINT_REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JointReport {
    pub version: u32,
    /// Always `pairs`: tells this report from a one-pair `report.json`.
    pub kind: String,
    pub run: String,
    pub model: String,
    pub baseline: String,
    /// The columns: directions into the pairs' shared language first (xx→en), then out of it.
    pub directions: Vec<String>,
    pub pairs: Vec<PairEntry>,
    /// One table per test set.
    pub tables: Vec<Table>,
    /// With `[eval] transfer = M`: M trained on each pair, BLEU on every direction (paper
    /// fig. 3), one matrix per test set.
    #[serde(default)]
    pub transfer: Vec<Transfer>,
}

/// The transfer across pairs on one test set: a row per pair M was trained on (and the
/// baseline's row for reference), a column per direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    pub method: String,
    pub test_set: String,
    /// (trained on, BLEU per column of [`JointReport::directions`]).
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    /// The same rows' off-target rates (0–1), where identified.
    #[serde(default)]
    pub off_target: Vec<(String, Vec<Option<f64>>)>,
}

/// One pair: where its artifacts are, its layers and routed units, its forgetting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairEntry {
    pub pair: String,
    pub dir: String,
    /// Whether its eval has written a report (a pair not yet evaluated has empty cells).
    pub evaluated: bool,
    pub layers: Option<Vec<usize>>,
    /// Per routed layer: (layer, general, pair-specific, other-specific units).
    pub route: Vec<(usize, [usize; 3])>,
    pub lm_loss: Vec<LmRow>,
    /// Where its decoding stopped (its report's `decoding.stop`; absent in joint reports
    /// written before it was recorded, all of which cut at the first newline).
    #[serde(default)]
    pub stop: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub test_set: String,
    pub rows: Vec<TableRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRow {
    pub system: String,
    /// One per column of [`JointReport::directions`]; `None` where not evaluated.
    pub cells: Vec<Option<Cell>>,
    /// Mean BLEU over the columns, when every column has a cell.
    pub mean_bleu: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub bleu: f64,
    pub chrf: f64,
    /// Paired bootstrap p-value of BLEU against the baseline (absent for the baseline).
    pub bleu_p: Option<f64>,
    pub sentences: usize,
    /// The share of hypotheses identified as another language than the target (0–1).
    #[serde(default)]
    pub off_target: Option<f64>,
}

/// The columns: the run's directions whose target is the most common language first (the
/// paper's X⇒En before En⇒X), each group in the run's order.
fn columns(cfg: &RunConfig) -> Vec<String> {
    let dirs = cfg.directions();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &dirs {
        *count.entry(d.src.code).or_default() += 1;
        *count.entry(d.tgt.code).or_default() += 1;
    }
    let hub = count.iter().max_by_key(|(_, n)| **n).map(|(l, _)| *l).unwrap_or("en");
    let (into, rest): (Vec<&landermt_data::Direction>, Vec<_>) = dirs.iter().partition(|d| d.tgt.code == hub);
    into.into_iter().chain(rest).map(|d| d.to_string()).collect()
}

/// Builds the joint report from whatever the pairs have written so far.
pub fn build(cfg: &RunConfig) -> Result<JointReport> {
    let directions = columns(cfg);
    let mut pairs = Vec::new();
    let mut reports: Vec<Report> = Vec::new();
    for p in cfg.pairs() {
        let dir = pair_dir(cfg, &p.name);
        let report: Option<Report> = read_optional(&dir.join("report.json"))?;
        let layers: Option<landermt_probe::Layers> = read_optional(&dir.join("layers.json"))?;
        let route: Option<landermt_route::Route> = read_optional(&dir.join("route.json"))?;
        pairs.push(PairEntry {
            pair: p.name.clone(),
            dir: dir.display().to_string(),
            evaluated: report.is_some(),
            layers: layers.map(|l| l.selected),
            route: route.map(|r| r.layers.iter().map(|l| (l.layer, l.counts)).collect()).unwrap_or_default(),
            lm_loss: report.as_ref().map(|r| r.lm_loss.clone()).unwrap_or_default(),
            stop: report.as_ref().map(|r| r.decoding.stop.clone()),
        });
        reports.extend(report);
    }
    let tables = tables(cfg, &directions, &reports);
    let transfer = match cfg.eval.transfer {
        Some(m) => transfer(cfg, m.name(), &directions, &reports, &tables),
        None => Vec::new(),
    };
    Ok(JointReport {
        version: JOINT_REPORT_VERSION,
        kind: "pairs".into(),
        run: cfg.run.name.clone(),
        model: cfg.model.describe(),
        baseline: cfg.eval.baseline.name().to_string(),
        directions,
        pairs,
        tables,
        transfer,
    })
}

/// Per test set: `method` as trained on each pair, decoded on every direction; the baseline's
/// row (the same base model on every direction) from the main table.
fn transfer(cfg: &RunConfig, method: &str, directions: &[String], reports: &[Report], tables: &[Table]) -> Vec<Transfer> {
    let mut out = Vec::new();
    for t in tables {
        let (mut rows, mut off_target): (Vec<(String, Vec<Option<f64>>)>, Vec<(String, Vec<Option<f64>>)>) = (Vec::new(), Vec::new());
        if let Some(base) = t.rows.iter().find(|r| r.system == cfg.eval.baseline.name()) {
            rows.push((base.system.clone(), base.cells.iter().map(|c| c.as_ref().map(|c| c.bleu)).collect()));
            off_target.push((base.system.clone(), base.cells.iter().map(|c| c.as_ref().and_then(|c| c.off_target)).collect()));
        }
        for (p, r) in cfg.pairs().iter().filter_map(|p| Some((p, reports.iter().find(|r| r.trained_directions.iter().any(|d| p.directions.iter().any(|x| x.to_string() == *d)))?))) {
            let row = |d: &String| r.rows.iter().find(|x| x.system == method && x.direction == *d && x.test_set == t.test_set);
            rows.push((format!("{method} on {}", p.name), directions.iter().map(|d| row(d).map(|x| x.bleu)).collect()));
            off_target.push((format!("{method} on {}", p.name), directions.iter().map(|d| row(d).and_then(|x| x.off_target).map(|o| o.rate())).collect()));
        }
        out.push(Transfer { method: method.to_string(), test_set: t.test_set.clone(), rows, off_target });
    }
    out
}

/// One table per test set: each system's cell in each column, from the pair that trains the
/// column's direction.
fn tables(cfg: &RunConfig, directions: &[String], reports: &[Report]) -> Vec<Table> {
    let systems = reports.iter().flat_map(|r| &r.systems).map(|s| s.name.as_str()).unique().collect::<Vec<_>>();
    let mut out = Vec::new();
    for set in &cfg.eval.test_sets {
        let cell = |system: &str, direction: &str| {
            let report = reports.iter().find(|r| r.trained_directions.iter().any(|d| d == direction))?;
            let row = report.rows.iter().find(|r| r.system == system && r.direction == direction && r.test_set == set.name)?;
            Some(Cell { bleu: row.bleu, chrf: row.chrf, bleu_p: row.bleu_p, sentences: row.sentences, off_target: row.off_target.map(|o| o.rate()) })
        };
        let rows: Vec<TableRow> = systems
            .iter()
            .map(|s| {
                let cells: Vec<Option<Cell>> = directions.iter().map(|d| cell(s, d)).collect();
                let mean_bleu = cells.iter().all(Option::is_some).then(|| cells.iter().flatten().map(|c| c.bleu).sum::<f64>() / cells.len().max(1) as f64);
                TableRow { system: s.to_string(), cells, mean_bleu }
            })
            .filter(|r| r.cells.iter().any(Option::is_some))
            .collect();
        if !rows.is_empty() {
            out.push(Table { test_set: set.name.clone(), rows });
        }
    }
    out
}

impl JointReport {
    pub fn markdown(&self) -> String {
        let mut md = format!("# {}: {} pairs, {}\n\n", self.run, self.pairs.len(), self.model);
        let waiting: Vec<&str> = self.pairs.iter().filter(|p| !p.evaluated).map(|p| p.pair.as_str()).collect();
        if !waiting.is_empty() {
            let _ = writeln!(md, "Not evaluated yet: {} (their cells are empty).\n", waiting.join(", "));
        }
        for t in &self.tables {
            let _ = writeln!(md, "## BLEU on `{}` (p: paired bootstrap against `{}`; * below 0.05)\n", t.test_set, self.baseline);
            let _ = writeln!(md, "| system | {} | mean |", self.directions.join(" | "));
            let _ = writeln!(md, "|---|{}---:|", "---:|".repeat(self.directions.len()));
            for r in &t.rows {
                let cells: Vec<String> = r.cells.iter().map(|c| c.as_ref().map_or("–".into(), format_cell)).collect();
                let _ = writeln!(md, "| {} | {} | {} |", r.system, cells.join(" | "), r.mean_bleu.map_or("–".into(), |m| format!("{m:.2}")));
            }
            md.push('\n');
            if t.rows.iter().flat_map(|r| &r.cells).flatten().any(|c| c.off_target.is_some()) {
                let _ = writeln!(md, "Off-target rate on `{}`: hypotheses identified as another of the run's languages than the target (%)\n", t.test_set);
                let _ = writeln!(md, "| system | {} |", self.directions.join(" | "));
                let _ = writeln!(md, "|---|{}", "---:|".repeat(self.directions.len()));
                for r in &t.rows {
                    let _ = writeln!(md, "| {} | {} |", r.system, percentages(r.cells.iter().map(|c| c.as_ref().and_then(|c| c.off_target))));
                }
                md.push('\n');
            }
        }
        for t in &self.transfer {
            let _ = writeln!(md, "## Transfer across pairs: `{}` trained on one pair, BLEU on every direction (`{}`; in brackets the gain over `{}`)\n", t.method, t.test_set, self.baseline);
            let _ = writeln!(md, "| trained on | {} |", self.directions.join(" | "));
            let _ = writeln!(md, "|---|{}", "---:|".repeat(self.directions.len()));
            for (label, cells) in &t.rows {
                let gain = if *label == self.baseline { vec![None; cells.len()] } else { self.gain(t, cells) };
                let cells: Vec<String> = cells
                    .iter()
                    .zip(gain)
                    .map(|(c, g)| match (c, g) {
                        (Some(b), Some(g)) => format!("{b:.2} ({g:+.2})"),
                        (Some(b), None) => format!("{b:.2}"),
                        (None, _) => "–".into(),
                    })
                    .collect();
                let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
            }
            md.push('\n');
            if t.off_target.iter().flat_map(|(_, c)| c).any(Option::is_some) {
                let _ = writeln!(md, "Off-target rate of the same systems (`{}`, %)\n", t.test_set);
                let _ = writeln!(md, "| trained on | {} |", self.directions.join(" | "));
                let _ = writeln!(md, "|---|{}", "---:|".repeat(self.directions.len()));
                for (label, cells) in &t.off_target {
                    let _ = writeln!(md, "| {label} | {} |", percentages(cells.iter().copied()));
                }
                md.push('\n');
            }
        }
        md.push_str("## Layers and routed units per pair\n\n| pair | selected layers | units per routed layer (general / pair-specific / other) |\n|---|---|---|\n");
        for p in &self.pairs {
            let layers = p.layers.as_ref().map_or("–".into(), |l| format!("{l:?}"));
            let route: Vec<String> = p.route.iter().map(|(l, c)| format!("{l}: {}/{}/{}", c[0], c[1], c[2])).collect();
            let _ = writeln!(md, "| {} | {layers} | {} |", p.pair, if route.is_empty() { "–".into() } else { route.join(", ") });
        }
        md.push_str(&self.forgetting_markdown());
        md
    }

    /// Forgetting, one row per pair and system, one column per language: the LM loss, and
    /// its change against the same pair's baseline (higher is more forgotten).
    fn forgetting_markdown(&self) -> String {
        let languages = self.pairs.iter().flat_map(|p| &p.lm_loss).map(|r| r.language.as_str()).unique().collect::<Vec<_>>();
        if languages.is_empty() {
            return String::new();
        }
        let mut md = format!(
            "\n## Forgetting: LM loss on held-out text (nats; in brackets the change against `{}` of the same pair, with its paired 95 % bootstrap interval where per-sentence losses were kept)\n\n| pair | system | {} |\n|---|---|{}\n",
            self.baseline,
            languages.join(" | "),
            "---:|".repeat(languages.len())
        );
        for p in &self.pairs {
            let row = |system: &str, language: &str| p.lm_loss.iter().find(|r| r.system == system && r.language == language);
            for s in p.lm_loss.iter().map(|r| r.system.as_str()).unique() {
                let cells: Vec<String> = languages
                    .iter()
                    .map(|l| {
                        let Some(x) = row(s, l) else { return "–".into() };
                        match (x.change, row(&self.baseline, l)) {
                            (Some(c), _) => format!("{:.3} ({:+.3} [{:+.3}, {:+.3}])", x.loss, c.delta, c.low, c.high),
                            (None, Some(b)) if s != self.baseline => format!("{:.3} ({:+.3})", x.loss, x.loss - b.loss),
                            _ => format!("{:.3}", x.loss),
                        }
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {s} | {} |", p.pair, cells.join(" | "));
            }
        }
        md
    }
}

impl JointReport {
    /// Per test set, `transfer-pairs-{set}.svg` (BLEU) and `transfer-pairs-{set}-gain.svg`
    /// (BLEU minus the baseline's on the same direction), each with its `.csv`; returns what
    /// it wrote.
    pub fn figures(&self, out: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
        let mut written = Vec::new();
        for t in &self.transfer {
            let cells = |c: &[Option<f64>]| c.iter().map(|v| v.unwrap_or(f64::NAN)).collect::<Vec<f64>>();
            let bleu = landermt_plot::Heatmap {
                title: format!("Transfer across pairs: BLEU of `{}` ({}, {})", t.method, t.test_set, self.model),
                row_label: "fine-tuned on".into(),
                column_label: "evaluated on".into(),
                rows: t.rows.iter().map(|(l, _)| l.clone()).collect(),
                columns: self.directions.clone(),
                values: t.rows.iter().map(|(_, c)| cells(c)).collect(),
                diverging: false,
            };
            let gains: Vec<&(String, Vec<Option<f64>>)> = t.rows.iter().filter(|(l, _)| *l != self.baseline).collect();
            let gain = landermt_plot::Heatmap {
                title: format!("Transfer across pairs: BLEU gain of `{}` over `{}` ({}, {})", t.method, self.baseline, t.test_set, self.model),
                rows: gains.iter().map(|(l, _)| l.clone()).collect(),
                values: gains.iter().map(|(_, c)| cells(&self.gain(t, c))).collect(),
                diverging: true,
                ..bleu.clone()
            };
            for (map, stem) in [(bleu, format!("transfer-pairs-{}", t.test_set)), (gain, format!("transfer-pairs-{}-gain", t.test_set))] {
                map.write(out, &stem)?;
                written.push(out.join(format!("{stem}.svg")));
            }
        }
        Ok(written)
    }

    /// A transfer row's BLEU minus the baseline row's, per direction.
    fn gain(&self, t: &Transfer, cells: &[Option<f64>]) -> Vec<Option<f64>> {
        let base = t.rows.iter().find(|(l, _)| *l == self.baseline).map(|(_, c)| c.as_slice()).unwrap_or(&[]);
        cells.iter().enumerate().map(|(i, c)| Some(c.as_ref()? - base.get(i).copied().flatten()?)).collect()
    }
}

/// Rates (0–1) as percentages, `–` where absent, joined as table cells.
pub(crate) fn percentages(rates: impl Iterator<Item = Option<f64>>) -> String {
    rates.map(|r| r.map_or("–".into(), |r| format!("{:.0}", 100.0 * r))).collect::<Vec<String>>().join(" | ")
}

fn format_cell(c: &Cell) -> String {
    match c.bleu_p {
        Some(p) => format!("{:.2} (p {p:.3}{})", c.bleu, if p < 0.05 { "*" } else { "" }),
        None => format!("{:.2}", c.bleu),
    }
}

/// The `report` step of a run over several pairs: `{run}/report.json` and `{run}/report.md`.
pub fn write(cfg: &RunConfig) -> Result<()> {
    let report = build(cfg)?;
    let json = serde_json::to_vec_pretty(&report)?;
    landermt_model::atomic::write_atomic(&cfg.run.dir.join("report.json"), |w| w.write_all(&json))?;
    let md = report.markdown();
    landermt_model::atomic::write_atomic(&cfg.run.dir.join("report.md"), |w| w.write_all(md.as_bytes()))?;
    println!("report: {} pairs → {}\n\n{md}", report.pairs.len(), cfg.run.dir.join("report.md").display());
    Ok(())
}
