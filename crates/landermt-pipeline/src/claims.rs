//! The numbers the README and the pages it links quote, regenerated from the committed results.
//!
//! A results table in a Markdown page sits between `<!-- results: NAME -->` and
//! `<!-- /results -->`, and is what [`blocks`] makes of the committed report it names.
//! `cargo xtask claims --write` rewrites every block; `cargo xtask claims`, and the test that
//! runs in `cargo test --workspace`, fail when a block differs from its results or when a
//! sentence of [`sentences`] (a number quoted in prose, written out from the results) is not
//! in its page word for word. So a page cannot quote a number its results no longer give.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use itertools::Itertools;

use crate::report::Report;
use crate::table::{JointReport, percentages};

/// The pages that may hold generated blocks, from the project root.
pub const PAGES: [&str; 4] = ["README.md", STUDY_PAGE, PAPER_PAGE, "BENCHMARKS.md"];

/// The en-fr study's page and the several-pairs page, moved out of the README.
pub const STUDY_PAGE: &str = "docs/study-en-fr.md";
pub const PAPER_PAGE: &str = "docs/paper-setting.md";

/// A results block: its name in the page's marker and its Markdown.
pub struct Block {
    pub name: &'static str,
    pub markdown: String,
}

fn read_report(root: &Path, path: &str) -> Result<Report> {
    Report::read(&root.join(path))
}

fn read_joint(root: &Path, path: &str) -> Result<JointReport> {
    read_json(&root.join(path), "a joint report.json")
}

/// A committed JSON result, with errors naming the file and what it should have been.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(p: &Path, what: &str) -> Result<T> {
    serde_json::from_slice(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?).with_context(|| format!("{}: not {what}", p.display()))
}

/// Every generated block, from the committed results.
pub fn blocks(root: &Path) -> Result<Vec<Block>> {
    let default_run = read_report(root, DEFAULT_RUN)?;
    let paper_cpu = read_joint(root, PAPER_CPU)?;
    let study = read_report(root, STUDY)?;
    let default_cells = [("en-fr", "flores"), ("fr-en", "flores"), ("en-de", "flores")];
    let study_cells = [("en-fr", "flores"), ("fr-en", "flores"), ("en-fr", "opus100"), ("fr-en", "opus100"), ("en-de", "flores")];
    let mut blocks = vec![
        Block { name: "default-run", markdown: system_table(&default_run, &default_cells) },
        Block { name: "default-run-measures", markdown: measures_table(&default_run, &default_cells) },
        Block { name: "study", markdown: system_table(&study, &study_cells) },
        Block { name: "study-measures", markdown: measures_table(&study, &study_cells) },
        Block { name: "study-landermt-against", markdown: comparisons_table(&study, &study_cells) },
        Block { name: "default-run-guard", markdown: guard_table(root, &default_run, &read_report(root, GUARDED_RUN)?)? },
        Block { name: "paper-cpu", markdown: joint_bleu(&paper_cpu, "flores")? },
        Block { name: "paper-cpu-off-target", markdown: joint_off_target(&paper_cpu, "flores")? },
        Block { name: "paper-cpu-transfer", markdown: joint_transfer_gain(&paper_cpu, "flores")? },
        Block { name: "paper-cpu-forgetting", markdown: joint_forgetting(&paper_cpu) },
        Block { name: "bf16-eval-weights", markdown: weights_table(&weights_cells(root)?) },
    ];
    // Speed against PyTorch: the committed bench sittings.
    if root.join(crate::sittings::BENCH_DIR).exists() {
        blocks.push(Block { name: "bench-sittings", markdown: crate::sittings::table(&crate::sittings::read(root)?) });
    }
    // The joint run (issue 38) has a block once its report is committed.
    if root.join(PAPER_JOINT).exists() {
        blocks.push(Block { name: "paper-joint", markdown: joint_mode_bleu(&read_report(root, PAPER_JOINT)?, &paper_cpu.directions, "flores") });
    }
    Ok(blocks)
}

/// The joint run's report (`configs/paper-joint.toml`).
pub const PAPER_JOINT: &str = "results/paper-joint/report.json";

/// A joint run's BLEU on `set` in `columns` (the per-pair table's order): each system a row with
/// p against the baseline, and each seeded method a row of its mean ± sd over its seeds; the
/// mean over the columns last.
pub(crate) fn joint_mode_bleu(r: &Report, columns: &[String], set: &str) -> String {
    let mut md = format!("Greedy decoding, stopped at {}; one model for every direction. p: paired bootstrap against `{}`.\n\n", stop_text(&r.decoding.stop), r.baseline);
    let _ = write!(md, "| system | {} | mean |\n|---|{}---:|\n", columns.iter().map(|d| arrow(d)).join(" | "), "---:|".repeat(columns.len()));
    let mean = |xs: &[Option<f64>]| xs.iter().copied().collect::<Option<Vec<f64>>>().map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64);
    for info in r.systems.iter().filter(|s| !s.name.contains(".seed")) {
        let rows: Vec<Option<&crate::report::Row>> = columns.iter().map(|d| r.rows.iter().find(|x| x.system == info.name && x.direction == *d && x.test_set == set)).collect();
        let cells = rows.iter().map(|x| x.map_or("–".into(), |x| format!("{:.2}{}", x.bleu, x.bleu_p.map_or(String::new(), |p| format!(" (p {})", format!("{p:.3}").trim_start_matches('0'))))));
        let m = mean(&rows.iter().map(|x| x.map(|x| x.bleu)).collect::<Vec<_>>());
        let _ = writeln!(md, "| {} | {} | {} |", info.name, cells.collect::<Vec<_>>().join(" | "), m.map_or("–".into(), |m| format!("{m:.2}")));
    }
    for method in r.seeds.iter().map(|s| s.method.as_str()).unique() {
        let cells: Vec<Option<&crate::seeds::SeedSummary>> = columns.iter().map(|d| r.seeds.iter().find(|s| s.method == method && s.direction == *d && s.test_set == set)).collect();
        let n = cells.iter().flatten().map(|s| s.seeds.len()).max().unwrap_or(0);
        let text = cells.iter().map(|s| s.map_or("–".into(), |s| format!("{:.2} ± {:.2}", s.mean, s.sd)));
        let m = mean(&cells.iter().map(|s| s.map(|s| s.mean)).collect::<Vec<_>>());
        let _ = writeln!(md, "| {method} ({n} seeds, mean ± sd) | {} | {} |", text.collect::<Vec<_>>().join(" | "), m.map_or("–".into(), |m| format!("{m:.2}")));
    }
    md
}

/// The default run's report, copied from `runs/en-fr` (which git does not keep).
pub const DEFAULT_RUN: &str = "docs/study-en-fr/report.json";
/// The default run decoded again with `[eval] no_repeat_ngram = 4`; both runs' hypotheses are
/// kept beside it, in `hyp/default/` and `hyp/no-repeat-4/`.
pub const GUARDED_RUN: &str = "docs/study-en-fr/report-no-repeat-4.json";
/// The paper-cpu run's joint report.
pub const PAPER_CPU: &str = "results/paper-cpu/report.json";
/// The en-fr study's report.
pub const STUDY: &str = "results/en-fr-study/report.json";

/// A report's stop rule in words; reports written before 2026-12-06 say "EOS or newline".
fn stop_text(stop: &str) -> String {
    match stop {
        "EOS or newline" => "EOS or the first newline (the cut before 2026-12-06: a leading newline left the hypothesis empty)".into(),
        other => other.into(),
    }
}

/// `compare`'s score differences against every other system on each cell, with their
/// paired-bootstrap p-values (the report's `comparisons`).
fn comparisons_table(r: &Report, cells: &[(&str, &str)]) -> String {
    let Some(focus) = r.comparisons.first().map(|c| c.system.clone()) else { return String::new() };
    let mut md = format!("`{focus}` minus each system, BLEU (p: paired bootstrap).\n\n| against |");
    for (d, s) in cells {
        let _ = write!(md, " {} {} |", set_name(s), arrow(d));
    }
    let _ = writeln!(md, "\n|---|{}", "---:|".repeat(cells.len()));
    for against in r.comparisons.iter().map(|c| c.against.as_str()).unique() {
        let mut row = cells.iter().map(|(d, s)| {
            r.comparisons.iter().find(|c| c.against == against && c.direction == *d && c.test_set == *s).map_or("–".to_string(), |c| format!("{:+.2} (p {:.3})", c.bleu_delta, c.bleu_p))
        });
        let _ = writeln!(md, "| {against} | {} |", row.join(" | "));
    }
    md
}

/// The arrow form of a direction, `en→fr`.
fn arrow(direction: &str) -> String {
    direction.replace('-', "→")
}

fn set_name(set: &str) -> &str {
    match set {
        "flores" => "FLORES",
        "opus100" => "OPUS",
        other => other,
    }
}

/// Per system, BLEU ± half-width (p against the baseline) on each (direction, test set), the
/// best of each column in bold; with each system's learning rate and trainable share.
fn system_table(r: &Report, cells: &[(&str, &str)]) -> String {
    let trained: Vec<&str> = r.trained_directions.iter().map(String::as_str).collect();
    let lines = r.rows.first().map_or(0, |x| x.sentences);
    let mut md = format!(
        "Greedy decoding, stopped at {}; {lines} lines per cell. BLEU ± 95 % bootstrap half-width, p: paired bootstrap against `{}` ({} resamplings).\n\n| system | trainable | final dev loss |",
        stop_text(&r.decoding.stop),
        r.baseline,
        r.n_bootstrap
    );
    for (d, s) in cells {
        let untrained = if trained.contains(d) { "" } else { " (untrained)" };
        let _ = write!(md, " {} {}{untrained} |", set_name(s), arrow(d));
    }
    let _ = writeln!(md, "\n|---|---:|---:|{}", "---|".repeat(cells.len()));
    let best: Vec<Option<f64>> = cells.iter().map(|(d, s)| r.rows.iter().filter(|x| x.direction == *d && x.test_set == *s).map(|x| x.bleu).reduce(f64::max)).collect();
    for info in &r.systems {
        let lr = info.settings.as_ref().map_or(String::new(), |t| format!(", lr {:e}", t.lr));
        let dev_loss = info.final_validation_loss.map_or("–".to_string(), |l| format!("{l:.4}"));
        let _ = write!(md, "| {}{lr} | {:.2} % | {dev_loss} |", info.name, 100.0 * info.trainable_share);
        for ((d, s), best) in cells.iter().zip(&best) {
            let cell = r.rows.iter().find(|x| x.system == info.name && x.direction == *d && x.test_set == *s).map_or("–".to_string(), |x| {
                let bleu = if Some(x.bleu) == *best { format!("**{:.2}**", x.bleu) } else { format!("{:.2}", x.bleu) };
                let p = x.bleu_p.map_or(String::new(), |p| format!(" (p {p:.3})"));
                format!("{bleu} ± {:.2}{p}", x.bleu_ci.ci)
            });
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    md
}

/// Per system: the off-target rate and the hypotheses at the token limit on each cell, and the
/// LM loss's change against the baseline with its 95 % interval, per language.
fn measures_table(r: &Report, cells: &[(&str, &str)]) -> String {
    let languages: Vec<&str> = r.lm_loss.iter().map(|l| l.language.as_str()).unique().collect();
    let cell_names = cells.iter().map(|(d, s)| format!("{} {}", set_name(s), arrow(d))).join(" / ");
    let sentences = r.lm_loss.first().map_or(0, |l| l.sentences);
    let mut md = format!(
        "Off-target: hypotheses `lingua` identifies as another of the run's languages than the target. Forgetting: LM loss on {sentences} held-out sentences per language, its change against `{}` and, where each sentence's loss was kept, the paired 95 % bootstrap interval of that change.\n\n| system | off-target % ({cell_names}) | at the token limit | {} |\n",
        r.baseline,
        languages.iter().map(|l| format!("LM loss {l} (change [95 % interval])")).join(" | ")
    );
    let _ = writeln!(md, "|---|---|---:|{}", "---|".repeat(languages.len()));
    for info in &r.systems {
        let rows: Vec<_> = cells.iter().map(|(d, s)| r.rows.iter().find(|x| x.system == info.name && x.direction == *d && x.test_set == *s)).collect();
        let off = rows.iter().map(|x| x.and_then(|x| x.off_target).map_or("–".into(), |o| format!("{:.0}", 100.0 * o.rate()))).join(" / ");
        let limit: Option<usize> = rows.iter().flatten().map(|x| x.at_limit).sum();
        let lines: usize = rows.iter().flatten().map(|x| x.sentences).sum();
        let limit = limit.map_or("–".to_string(), |n| format!("{n} of {lines}"));
        let lm = languages
            .iter()
            .map(|l| {
                let Some(x) = r.lm_loss.iter().find(|x| x.system == info.name && x.language == *l) else { return "–".to_string() };
                let base = r.lm_loss.iter().find(|b| b.system == r.baseline && b.language == *l).filter(|_| info.name != r.baseline);
                match (x.change, base) {
                    (Some(c), _) => format!("{:.3} ({:+.3} [{:+.3}, {:+.3}])", x.loss, c.delta, c.low, c.high),
                    (None, Some(b)) => format!("{:.3} ({:+.3})", x.loss, x.loss - b.loss),
                    (None, None) => format!("{:.3}", x.loss),
                }
            })
            .join(" | ");
        let _ = writeln!(md, "| {} | {off} | {limit} | {lm} |", info.name);
    }
    md
}

/// The joint report's BLEU table on `set`, the paper's Table 1: p against the baseline, the
/// best of each column in bold.
fn joint_bleu(j: &JointReport, set: &str) -> Result<String> {
    let t = j.tables.iter().find(|t| t.test_set == set).with_context(|| format!("{PAPER_CPU}: no `{set}` table"))?;
    let mut md = pairs_decoding(j);
    let _ = write!(md, "| system | {} | mean |\n|---|{}---:|\n", j.directions.iter().map(|d| arrow(d)).join(" | "), "---:|".repeat(j.directions.len()));
    let column_best = |i: usize| t.rows.iter().filter_map(|r| r.cells[i].as_ref().map(|c| c.bleu)).reduce(f64::max);
    let mean_best = t.rows.iter().filter_map(|r| r.mean_bleu).reduce(f64::max);
    let bold = |x: f64, best: Option<f64>| if Some(x) == best { format!("**{x:.2}**") } else { format!("{x:.2}") };
    for r in &t.rows {
        let mut cells = r.cells.iter().enumerate().map(|(i, c)| {
            c.as_ref().map_or("–".into(), |c| {
                let p = c.bleu_p.map_or(String::new(), |p| format!(" (p {})", format!("{p:.3}").trim_start_matches('0')));
                format!("{}{p}", bold(c.bleu, column_best(i)))
            })
        });
        let _ = writeln!(md, "| {} | {} | {} |", r.system, cells.join(" | "), r.mean_bleu.map_or("–".into(), |m| bold(m, mean_best)));
    }
    Ok(md)
}

/// How each pair's hypotheses were decoded, as the joint report recorded it: one sentence.
fn pairs_decoding(j: &JointReport) -> String {
    // Joint reports from before the rule was recorded all cut at the first newline.
    let stops: Vec<(String, String)> = j.pairs.iter().filter(|p| p.evaluated).map(|p| (p.pair.clone(), p.stop.clone().unwrap_or_else(|| "EOS or newline".into()))).collect();
    let distinct: Vec<&String> = stops.iter().map(|(_, s)| s).unique().collect();
    match distinct.as_slice() {
        [one] => format!("Greedy decoding, stopped at {}.\n\n", stop_text(one)),
        _ => format!("Greedy decoding, stopped by pair at: {}.\n\n", stops.iter().map(|(p, s)| format!("{p}: {}", stop_text(s))).join("; ")),
    }
}

/// The joint report's off-target rates on `set`: per system and direction, then `landermt`
/// trained on each pair (the transfer matrix), in percent.
fn joint_off_target(j: &JointReport, set: &str) -> Result<String> {
    let t = j.tables.iter().find(|t| t.test_set == set).with_context(|| format!("{PAPER_CPU}: no `{set}` table"))?;
    let mut md = format!("| system | {} |\n|---|{}\n", j.directions.iter().map(|d| arrow(d)).join(" | "), "---:|".repeat(j.directions.len()));
    for r in &t.rows {
        let _ = writeln!(md, "| {} | {} |", r.system, percentages(r.cells.iter().map(|c| c.as_ref().and_then(|c| c.off_target))));
    }
    if let Some(tr) = j.transfer.iter().find(|tr| tr.test_set == set) {
        for (label, cells) in tr.off_target.iter().filter(|(l, _)| *l != j.baseline) {
            let _ = writeln!(md, "| {label} | {} |", percentages(cells.iter().copied()));
        }
    }
    Ok(md)
}

/// The transfer matrix on `set` as gains over the baseline: a row per pair `landermt` was
/// trained on, the pair's own directions in bold.
fn joint_transfer_gain(j: &JointReport, set: &str) -> Result<String> {
    let tr = j.transfer.iter().find(|tr| tr.test_set == set).with_context(|| format!("{PAPER_CPU}: no `{set}` transfer matrix"))?;
    let (_, base) = tr.rows.iter().find(|(l, _)| *l == j.baseline).with_context(|| format!("{PAPER_CPU}: the transfer matrix has no `{}` row", j.baseline))?;
    let mut md = format!("| trained on | {} |\n|---|{}\n", j.directions.iter().map(|d| arrow(d)).join(" | "), "---:|".repeat(j.directions.len()));
    for (label, cells) in tr.rows.iter().filter(|(l, _)| *l != j.baseline) {
        let pair = label.rsplit(' ').next().unwrap_or_default();
        let own = |d: &str| d.split('-').sorted().join("-") == pair.split('-').sorted().join("-");
        let mut gains = cells.iter().zip(base).zip(&j.directions).map(|((x, b), d)| match (x, b) {
            (Some(x), Some(b)) if own(d) => format!("**{:+.2}**", x - b),
            (Some(x), Some(b)) => format!("{:+.2}", x - b),
            _ => "–".into(),
        });
        let _ = writeln!(md, "| {label} | {} |", gains.join(" | "));
    }
    Ok(md)
}

/// Forgetting per pair and trained system: the range of its LM-loss change against the
/// baseline over the held-out languages, and how many of the changes' 95 % intervals lie
/// above zero where intervals were kept.
fn joint_forgetting(j: &JointReport) -> String {
    let systems: Vec<&str> = j.pairs.iter().flat_map(|p| p.lm_loss.iter().map(|r| r.system.as_str())).filter(|s| *s != j.baseline).unique().collect();
    let mut md = format!("| pair | {} |\n|---|{}\n", systems.iter().map(|s| format!("`{s}`")).join(" | "), "---|".repeat(systems.len()));
    for p in j.pairs.iter().filter(|p| !p.lm_loss.is_empty()) {
        let cell = |system: &str| {
            let changes: Vec<(f64, Option<landermt_eval::bootstrap::Change>)> = p
                .lm_loss
                .iter()
                .filter(|r| r.system == system)
                .filter_map(|r| p.lm_loss.iter().find(|b| b.system == j.baseline && b.language == r.language).map(|b| (r.loss - b.loss, r.change)))
                .collect();
            let Some((lo, hi)) = changes.iter().map(|c| c.0).minmax().into_option() else { return "–".to_string() };
            let kept: Vec<_> = changes.iter().filter_map(|c| c.1).collect();
            let above = if kept.len() == changes.len() { format!(" ({} of {} above 0)", kept.iter().filter(|c| c.low > 0.0).count(), kept.len()) } else { String::new() };
            format!("{lo:+.3} to {hi:+.3}{above}")
        };
        let _ = writeln!(md, "| {} | {} |", p.pair, systems.iter().map(|s| cell(s)).join(" | "));
    }
    md
}

/// Per system and FLORES direction: BLEU without and with the no-repeat guard (p: paired
/// bootstrap between the two), and the hypotheses at the token limit in each.
fn guard_table(root: &Path, plain: &Report, guarded: &Report) -> Result<String> {
    let hyps = |run: &str, system: &str, d: &str| -> Result<Vec<String>> {
        let p = root.join("docs/study-en-fr/hyp").join(run).join(system).join(format!("flores.{d}.hyp"));
        Ok(std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?.lines().map(str::to_string).collect())
    };
    let n = guarded.decoding.no_repeat_ngram;
    let mut md = format!("| system | direction | BLEU | with no_repeat_ngram = {n} | p | at the token limit | with the guard |\n|---|---|---:|---:|---:|---:|---:|\n");
    for info in &plain.systems {
        for d in ["en-fr", "fr-en", "en-de"] {
            let row = |r: &Report| r.rows.iter().find(|x| x.system == info.name && x.direction == d && x.test_set == "flores").cloned().with_context(|| format!("no `{}` row on {d}", info.name));
            let (a, b) = (row(plain)?, row(guarded)?);
            let source = landermt_data::ParallelSource::Flores { dir: root.join("data/flores200-devtest"), first: 501, last: 500 + a.sentences };
            let refs: Vec<String> = landermt_data::read_parallel(&source, d.parse()?)?.into_iter().map(|p| p.tgt).collect();
            let (x, y, p) = landermt_eval::bootstrap::paired_bleu(
                &landermt_eval::Bleu::for_target(d.parse::<landermt_data::Direction>()?.tgt.code),
                &refs,
                &hyps("default", &info.name, d)?,
                &hyps("no-repeat-4", &info.name, d)?,
                1000,
                12345,
            );
            anyhow::ensure!((x - a.bleu).abs() < 1e-9 && (y - b.bleu).abs() < 1e-9, "the kept hypotheses of `{}` on {d} are not the reports'", info.name);
            let limit = |r: &crate::report::Row| r.at_limit.map_or("–".to_string(), |k| k.to_string());
            let _ = writeln!(md, "| {} | {} | {x:.2} | {y:.2} | {p:.3} | {} | {} |", info.name, arrow(d), limit(&a), limit(&b));
        }
    }
    Ok(md)
}

/// `[eval] weights = "bf16"` against f32 on the default run (issue 41): both decodings of every
/// system, kept in `f32/` and `bf16/` under this folder.
pub const WEIGHTS_CHECK: &str = "docs/bf16-check/eval-weights";

/// One system and direction of [`WEIGHTS_CHECK`]: identical lines, and BLEU f32 → bf16 with
/// sacreBLEU's paired bootstrap p (1000 resamplings, seed 12345, as `--paired-bs`).
struct WeightsCell {
    system: &'static str,
    direction: &'static str,
    identical: usize,
    lines: usize,
    bleu: (f64, f64),
    p: f64,
}

fn weights_cells(root: &Path) -> Result<Vec<WeightsCell>> {
    let mut cells = Vec::new();
    for system in ["none", "lora", "full", "landermt"] {
        for direction in ["en-fr", "fr-en", "en-de"] {
            let hyps = |weights: &str| -> Result<Vec<String>> {
                let p = root.join(WEIGHTS_CHECK).join(weights).join(system).join(format!("flores.{direction}.hyp"));
                Ok(std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?.lines().map(str::to_string).collect())
            };
            let (f32, bf16) = (hyps("f32")?, hyps("bf16")?);
            let source = landermt_data::ParallelSource::Flores { dir: root.join("data/flores200-devtest"), first: 501, last: 500 + f32.len() };
            let refs: Vec<String> = landermt_data::read_parallel(&source, direction.parse()?)?.into_iter().map(|p| p.tgt).collect();
            let bleu = landermt_eval::Bleu::for_target(direction.parse::<landermt_data::Direction>()?.tgt.code);
            let (x, y, p) = landermt_eval::bootstrap::paired_bleu(&bleu, &refs, &f32, &bf16, 1000, 12345);
            let identical = f32.iter().zip(&bf16).filter(|(a, b)| a == b).count();
            cells.push(WeightsCell { system, direction, identical, lines: f32.len(), bleu: (x, y), p });
        }
    }
    Ok(cells)
}

fn weights_table(cells: &[WeightsCell]) -> String {
    let mut md = "| system | direction | identical lines | BLEU f32 → bf16 | p |\n|---|---|---:|---|---:|\n".to_string();
    for c in cells {
        let _ = writeln!(md, "| {} | {} | {}/{} | {:.1} → {:.1} | {:.3} |", c.system, arrow(c.direction), c.identical, c.lines, c.bleu.0, c.bleu.1, c.p);
    }
    md
}

/// The README's sentence on [`WEIGHTS_CHECK`]: the range of identical lines, and the cells whose
/// BLEU moved outside the interval (p < 0.05).
fn weights_summary(root: &Path) -> Result<String> {
    let cells = weights_cells(root)?;
    let share = |c: &WeightsCell| c.identical * 100 / c.lines.max(1);
    let (low, high) = cells.iter().map(share).fold((usize::MAX, 0), |(l, h), x| (l.min(x), h.max(x)));
    let moved: Vec<String> = cells.iter().filter(|c| c.p < 0.05).map(|c| format!("`{}` {}, {:+.1}, p = {:.3}", c.system, arrow(c.direction), c.bleu.1 - c.bleu.0, c.p)).collect();
    let verb = if moved.len() == 1 { "moves" } else { "move" };
    Ok(format!("it keeps {low}–{high} of 100 of f32's hypotheses, and {} of the {} BLEU cells {verb} outside the interval ({}", moved.len(), cells.len(), moved.join("; ")))
}

/// Sentences of prose that quote results: each must appear in its page word for word (a line
/// break counting as a space).
pub fn sentences(root: &Path) -> Result<Vec<(&'static str, String)>> {
    let study = read_report(root, STUDY)?;
    let default_run = read_report(root, DEFAULT_RUN)?;
    let paper_cpu = read_joint(root, PAPER_CPU)?;
    let mut sentences = vec![
        (STUDY_PAGE, first_blocks(root)?),
        (PAPER_PAGE, joint_significance(&paper_cpu, "flores", "landermt")?),
        (PAPER_PAGE, joint_significance(&paper_cpu, "flores", "lora")?),
        (STUDY_PAGE, dev_losses(&study)?),
        (STUDY_PAGE, gains(&study, "landermt", &["en-fr", "fr-en", "en-de"])?),
        (PAPER_PAGE, joint_start(root)?),
        (PAPER_PAGE, joint_sweep(root, "landermt")?),
        (PAPER_PAGE, joint_sweep(root, "lora")?),
        (PAPER_PAGE, joint_sweep(root, "full")?),
        (STUDY_PAGE, off_target_range(&study, &["en-fr"])?),
        (STUDY_PAGE, german_forgetting(&study)?),
        ("README.md", gains(&default_run, "landermt", &["en-fr", "fr-en", "en-de"])?),
        ("README.md", off_target_range(&default_run, &["en-fr", "en-de"])?),
        ("README.md", weights_summary(root)?),
    ];
    if root.join(crate::sittings::BENCH_DIR).exists() {
        sentences.push(("README.md", crate::sittings::translate_summary(&crate::sittings::read(root)?)));
    }
    Ok(sentences)
}

/// Where `system`'s BLEU on `set` is significantly above the joint report's baseline (p < 0.05),
/// and where it is below it.
fn joint_significance(j: &JointReport, set: &str, system: &str) -> Result<String> {
    let t = j.tables.iter().find(|t| t.test_set == set).with_context(|| format!("{PAPER_CPU}: no `{set}` table"))?;
    let row = |s: &str| t.rows.iter().find(|r| r.system == s).with_context(|| format!("{PAPER_CPU}: no `{s}` row"));
    let (x, b) = (row(system)?, row(&j.baseline)?);
    let (mut above, mut below) = (Vec::new(), Vec::new());
    for ((c, base), d) in x.cells.iter().zip(&b.cells).zip(&j.directions) {
        let (Some(c), Some(base)) = (c, base) else { continue };
        if c.bleu_p.is_some_and(|p| p < 0.05) && c.bleu > base.bleu {
            above.push(arrow(d));
        }
        if c.bleu < base.bleu {
            below.push(arrow(d));
        }
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    Ok(format!(
        "`{system}` is significantly above `{}` (p < 0.05) on {} of the {} directions ({}) and below it on {} ({})",
        j.baseline,
        above.len(),
        j.directions.len(),
        list(&above),
        below.len(),
        list(&below)
    ))
}

/// The joint run's layer choice, its routed start on two pairs, and the share `landermt`
/// trains, from `results/paper-joint/`.
fn joint_start(root: &Path) -> Result<String> {
    let dir = root.join("results/paper-joint");
    let read = |file: &str| -> Result<serde_json::Value> { read_json(&dir.join(file), "JSON") };
    let layers: Vec<u64> = read("layers.json")?["selected"].as_array().context("layers.json: no selection")?.iter().filter_map(|v| v.as_u64()).collect();
    let routes: landermt_route::Routes = serde_json::from_value(read("routes.json")?)?;
    let check = |a: &str, b: &str| -> Result<String> {
        let r = routes.routes.iter().find(|r| r.pair.iter().any(|l| l.code == a) && r.pair.iter().any(|l| l.code == b)).with_context(|| format!("routes.json: no {a}–{b}"))?;
        let c = r.check.as_ref().with_context(|| format!("routes.json: {a}–{b} has no check"))?;
        Ok(format!("of {a}–{b} from {:.2} to {:.2}", c.base_loss, c.routed_loss))
    };
    let share = read("sweep/landermt/train.lr/1e-4/train/landermt/train.json")?["trainable_share"].as_f64().context("train.json: no trainable_share")?;
    let (last, first) = layers.split_last().context("layers.json: no selection")?;
    Ok(format!(
        "chose blocks {} and {last} (D averaged over the ten directions); the routed start moves the held-out LM loss {} and {} (`routes.json`'s checks); the joint `landermt` trains {:.1} % of the weights",
        first.iter().map(u64::to_string).join(", "),
        check("en", "zh")?,
        check("en", "fr")?,
        100.0 * share
    ))
}

/// `method`'s learning-rate sweep on the joint dev set: the best rate, and every point's mean
/// dev BLEU and dev loss, with the directions where a point is significantly off the best.
fn joint_sweep(root: &Path, method: &str) -> Result<String> {
    let p = root.join(format!("results/paper-joint/sweep/{method}/train.lr/sweep.json"));
    let sweep: crate::sweep::SweepReport = read_json(&p, "a sweep report")?;
    let loss = |x: &crate::sweep::Point| x.dev_loss.map_or("–".to_string(), |l| format!("{l:.3}"));
    let best = sweep.points.iter().find(|x| x.value == sweep.best).with_context(|| format!("{}: no point {}", p.display(), sweep.best))?;
    let others: Vec<String> = sweep
        .points
        .iter()
        .filter(|x| x.value != sweep.best)
        .map(|x| {
            let off: Vec<String> = x
                .directions
                .iter()
                .filter(|d| d.p_vs_best.is_some_and(|p| p < 0.05))
                .map(|d| format!("{} {}", arrow(&d.direction), if d.bleu > best.directions.iter().find(|b| b.direction == d.direction).map_or(0.0, |b| b.bleu) { "above" } else { "below" }))
                .collect();
            let off = if off.is_empty() { String::new() } else { format!(" (significantly {})", off.join(", ")) };
            format!("{} {:.2} / {}{off}", x.value, x.dev_bleu, loss(x))
        })
        .collect();
    Ok(format!("`{method}`'s best joint rate is {} (mean dev BLEU {:.2}, dev loss {}); the other points give {}", sweep.best, best.dev_bleu, loss(best), others.join("; ")))
}

/// `system`'s BLEU gain over the baseline on FLORES in `directions`, with the p-values.
fn gains(r: &Report, system: &str, directions: &[&str]) -> Result<String> {
    let row = |s: &str, d: &str| r.rows.iter().find(|x| x.system == s && x.direction == d && x.test_set == "flores").with_context(|| format!("no `{s}` row on {d}"));
    let (mut deltas, mut ps) = (Vec::new(), Vec::new());
    for d in directions {
        let (x, b) = (row(system, d)?, row(&r.baseline, d)?);
        deltas.push(format!("{:+.2}", x.bleu - b.bleu));
        ps.push(x.bleu_p.map_or("–".to_string(), |p| format!("{p:.3}")));
    }
    Ok(format!("`{system}` is {} BLEU above `{}` (p {})", deltas.join(" / "), r.baseline, ps.join(" / ")))
}

/// The baseline's off-target rate on FLORES in `directions`, and the trained systems' range.
fn off_target_range(r: &Report, directions: &[&str]) -> Result<String> {
    let rate = |s: &str, d: &str| -> Result<f64> {
        let row = r.rows.iter().find(|x| x.system == s && x.direction == d && x.test_set == "flores").with_context(|| format!("no `{s}` row on {d}"))?;
        Ok(100.0 * row.off_target.with_context(|| format!("`{s}` on {d}: no off-target rate"))?.rate())
    };
    let mut parts = Vec::new();
    for d in directions {
        let trained: Vec<f64> = r.systems.iter().filter(|s| s.name != r.baseline).map(|s| rate(&s.name, d)).collect::<Result<_>>()?;
        let (lo, hi) = trained.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        parts.push(format!("from {:.0} % to {lo:.0}–{hi:.0} % on {}", rate(&r.baseline, d)?, arrow(d)));
    }
    Ok(format!("cut the untuned model's off-target rate {}", parts.join(" and ")))
}

/// A system's report entry, or an error naming the report.
fn system<'a>(r: &'a Report, name: &str) -> Result<&'a crate::report::SystemInfo> {
    r.systems.iter().find(|s| s.name == name).with_context(|| format!("{STUDY}: no system `{name}`"))
}

/// The study's final dev losses of `lora` and `full`, quoted beside the rate sweep.
fn dev_losses(study: &Report) -> Result<String> {
    let loss = |name: &str| -> Result<f64> { system(study, name)?.final_validation_loss.with_context(|| format!("{STUDY}: `{name}` has no final dev loss")) };
    Ok(format!("LoRA's {:.3} and full's {:.3} at theirs", loss("lora")?, loss("full")?))
}

/// The change of the study's LM loss on German against `none`, for the claims table.
fn german_forgetting(study: &Report) -> Result<String> {
    let loss = |name: &str| study.lm_loss.iter().find(|r| r.system == name && r.language == "de").map(|r| r.loss).with_context(|| format!("{STUDY}: no German LM loss of `{name}`"));
    let base = loss("none")?;
    Ok(format!("LM loss on German {:+.2} nats against `none`; LoRA {:+.2}, full {:+.2}", loss("landermt")? - base, loss("lora")? - base, loss("full")? - base))
}

/// The en-fr study's sweep points, from the project root.
const SWEEP: &str = "results/en-fr-study/sweep";

/// A sweep point's dev hypotheses of `direction`, from its `dev.json`.
fn dev_hypotheses(root: &Path, point: &str, direction: &str) -> Result<Vec<String>> {
    let dir = root.join(SWEEP).join(point);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("dev.json")).with_context(|| format!("reading {}/dev.json", dir.display()))?)?;
    let d = saved["point"]["directions"].as_array().and_then(|ds| ds.iter().find(|d| d["direction"] == direction)).with_context(|| format!("{}: no {direction} in dev.json", dir.display()))?;
    let file = dir.join(d["hypotheses"].as_str().context("dev.json: no hypotheses file")?);
    Ok(std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?.lines().map(str::to_string).collect())
}

/// The study's dev references of `direction`: the first 100 pairs of its dev file.
fn dev_references(root: &Path, direction: &str) -> Result<Vec<String>> {
    let source = landermt_data::ParallelSource::Tsv { path: root.join("data/corpus/dev.en-fr.tsv"), src_lang: "en".into(), tgt_lang: "fr".into() };
    let mut pairs = landermt_data::read_parallel(&source, direction.parse()?)?;
    pairs.truncate(100);
    Ok(pairs.into_iter().map(|p| p.tgt).collect())
}

/// The opening summary's sentence on blocks 0–2: `layers` and `landermt` on the model's first
/// three blocks against the probe's 12–14, and `landermt` there against LoRA, on dev.
fn first_blocks(root: &Path) -> Result<String> {
    let directions = ["en-fr", "fr-en"];
    // (sweep point a, sweep point b) → per direction (b − a, p).
    let compare = |a: &str, b: &str| -> Result<Vec<(f64, f64)>> {
        directions
            .iter()
            .map(|d| {
                let refs = dev_references(root, d)?;
                let bleu = landermt_eval::Bleu::for_target(d.parse::<landermt_data::Direction>()?.tgt.code);
                let (x, y, p) = landermt_eval::bootstrap::paired_bleu(&bleu, &refs, &dev_hypotheses(root, a, d)?, &dev_hypotheses(root, b, d)?, 1000, 12345);
                Ok((y - x, p))
            })
            .collect()
    };
    let layers = compare("layers/train.lr/1e-4", "layers/probe.layers/0-1-2")?;
    let landermt = compare("landermt/train.lr/3e-4", "landermt/probe.layers/0-1-2")?;
    let lora = compare("lora/train.lr/3e-4", "landermt/probe.layers/0-1-2")?;
    let pair = |v: &[(f64, f64)], f: &dyn Fn(f64) -> String| v.iter().map(|x| f(x.0)).join(" / ");
    let ps = |v: &[(f64, f64)]| v.iter().map(|x| format!("{:.3}", x.1)).join(" / ");
    Ok(format!(
        "`layers` gains {} dev BLEU (en→fr / fr→en; p {}) and LANDeRMT {} (p {}), which leaves LANDeRMT {} behind LoRA (p {})",
        pair(&layers, &|x| format!("{x:.2}")),
        ps(&layers),
        pair(&landermt, &|x| format!("{x:.2}")),
        ps(&landermt),
        pair(&lora, &|x| format!("{:.2}", -x)),
        ps(&lora)
    ))
}

const OPEN: &str = "<!-- results: ";
const CLOSE: &str = "<!-- /results -->";

/// `text` with every block's body replaced by `blocks`' Markdown; errors on a block name that
/// [`blocks`] does not make or a marker left open.
pub fn regenerate(text: &str, blocks: &[Block], page: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let line_end = rest[at..].find('\n').map(|i| at + i + 1).with_context(|| format!("{page}: a results marker without a line end"))?;
        let name = rest[at + OPEN.len()..line_end].trim().trim_end_matches("-->").trim();
        let block = blocks.iter().find(|b| b.name == name).with_context(|| format!("{page}: `{name}` is not a results block (known: {})", blocks.iter().map(|b| b.name).join(", ")))?;
        let close = rest[line_end..].find(CLOSE).map(|i| line_end + i).with_context(|| format!("{page}: results block `{name}` has no `{CLOSE}`"))?;
        out.push_str(&rest[..line_end]);
        out.push_str(&block.markdown);
        rest = &rest[close..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What differs between the pages and the results: a block out of date, or a quoted sentence
/// missing. Empty when every number is current.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let blocks = blocks(root)?;
    let mut problems = Vec::new();
    for page in PAGES {
        let text = std::fs::read_to_string(root.join(page)).with_context(|| format!("reading {page}"))?;
        let fresh = regenerate(&text, &blocks, page)?;
        if fresh != text {
            let line = text.lines().zip(fresh.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
            problems.push(format!("{page}:{line}: a results block differs from the committed results (run `cargo xtask claims --write`)"));
        }
    }
    for (page, sentence) in sentences(root)? {
        let text = std::fs::read_to_string(root.join(page)).with_context(|| format!("reading {page}"))?;
        // Line breaks in a paragraph are spaces.
        let words = |s: &str| s.split_whitespace().join(" ");
        if !words(&text).contains(&words(&sentence)) {
            problems.push(format!("{page}: the results now say \"{sentence}\", which the page does not"));
        }
    }
    Ok(problems)
}

/// Rewrites every page's blocks from the results; returns the pages that changed.
pub fn write(root: &Path) -> Result<Vec<&'static str>> {
    let blocks = blocks(root)?;
    let mut changed = Vec::new();
    for page in PAGES {
        let path = root.join(page);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {page}"))?;
        let fresh = regenerate(&text, &blocks, page)?;
        if fresh != text {
            landermt_model::atomic::write_atomic(&path, |w| w.write_all(fresh.as_bytes()))?;
            changed.push(page);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_replaced_between_its_markers_and_nothing_else_moves() {
        let blocks = [Block { name: "t", markdown: "| new |\n".into() }];
        let page = "before\n<!-- results: t -->\n| old |\n<!-- /results -->\nafter\n";
        assert_eq!(regenerate(page, &blocks, "p").unwrap(), "before\n<!-- results: t -->\n| new |\n<!-- /results -->\nafter\n");
        assert!(regenerate("<!-- results: u -->\n<!-- /results -->\n", &blocks, "p").unwrap_err().to_string().contains("`u` is not a results block"));
        assert!(regenerate("<!-- results: t -->\n| old |\n", &blocks, "p").unwrap_err().to_string().contains("no `<!-- /results -->`"));
    }

    /// The pages' numbers are the committed results' (the claims check of issue 37).
    #[test]
    fn the_readme_quotes_the_committed_results() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let problems = check(&root).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
