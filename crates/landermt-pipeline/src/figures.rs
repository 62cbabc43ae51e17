//! The analysis figures of stages 1–2 (the paper's figs. 4–7) and of stage 5 (the transfer
//! matrix, fig. 3, and forgetting), as CSV + SVG in `{run}/figures/`: whatever the run's
//! artifacts allow is drawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use itertools::Itertools;
use landermt_model::Site;
use landermt_plot::LineChart;
use landermt_score::{Neurons, Scores};

/// The module whose units the awareness figures show: the FFN's intermediate units, which
/// stage 3 routes.
const MODULE: Site = Site::FfnAct;

/// Writes every figure the artifacts in `run` allow; returns the SVG paths.
pub fn write_all(run: &Path) -> Result<Vec<PathBuf>> {
    let out = run.join("figures");
    let mut written = Vec::new();
    let mut save = |chart: LineChart, stem: &str| -> Result<()> {
        chart.write(&out, stem)?;
        written.push(out.join(format!("{stem}.svg")));
        Ok(())
    };
    let layers_path = run.join("layers.json");
    if layers_path.exists() {
        let layers: landermt_probe::Layers = serde_json::from_slice(&std::fs::read(&layers_path)?).with_context(|| format!("{}: not a layers.json", layers_path.display()))?;
        for chart in probe_charts(&layers) {
            let stem = chart.0;
            save(chart.1, stem)?;
        }
    }
    if let Some((activation, delta)) = pair_probe_charts(run)? {
        save(activation, "pairs-activation")?;
        save(delta, "pairs-delta")?;
    }
    let (scores_path, neurons_path) = (run.join("neurons.safetensors"), run.join("neurons.json"));
    if scores_path.exists() && neurons_path.exists() {
        let scores = Scores::read(&scores_path)?;
        let neurons: Neurons = serde_json::from_slice(&std::fs::read(&neurons_path)?).with_context(|| format!("{}: not a neurons.json", neurons_path.display()))?;
        for chart in score_charts(&scores, &neurons) {
            let stem = chart.0;
            save(chart.1, stem)?;
        }
    }
    let report_path = run.join("report.json");
    if report_path.exists() {
        // A run over several pairs has the joint report there; each pair has its own.
        match serde_json::from_slice::<crate::table::JointReport>(&std::fs::read(&report_path)?) {
            Ok(joint) if joint.kind == "pairs" => written.extend(joint.figures(&out)?),
            _ => written.extend(eval_figures(&crate::report::Report::read(&report_path)?, &out)?),
        }
    }
    Ok(written)
}

/// The transfer matrix per test set, the LM loss of every system on held-out text, and BLEU on
/// the directions no system was trained on.
fn eval_figures(report: &crate::report::Report, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if let Some(m) = &report.transfer {
        for set in report.test_sets() {
            let rows = report.transfer_rows();
            let map = landermt_plot::Heatmap {
                title: format!("Transfer: BLEU of `{m}` trained on one direction ({set}, {})", report.model),
                row_label: "fine-tuned on".into(),
                column_label: "evaluated on".into(),
                values: rows.iter().map(|(_, s)| report.evaluated_directions.iter().map(|d| report.bleu(s, d, &set).unwrap_or(f64::NAN)).collect()).collect(),
                rows: rows.into_iter().map(|(label, _)| label).collect(),
                columns: report.evaluated_directions.clone(),
                diverging: false,
            };
            let stem = format!("transfer-{set}");
            map.write(out, &stem)?;
            written.push(out.join(format!("{stem}.svg")));
        }
    }
    // Systems trained on all directions (the transfer runs are in their own figure).
    let systems: Vec<&str> = report.systems.iter().map(|s| s.name.as_str()).filter(|s| !s.contains('@')).collect();
    let languages: Vec<String> = report.lm_loss.iter().map(|r| r.language.clone()).unique().collect();
    if !languages.is_empty() {
        let mut chart = landermt_plot::BarChart::new(format!("Forgetting: LM loss on held-out monolingual text ({})", report.model), "mean next-token loss (nats)", languages.clone());
        for s in &systems {
            let loss = |l: &String| report.lm_loss.iter().find(|r| r.system == *s && r.language == *l).map_or(f64::NAN, |r| r.loss);
            chart = chart.series(*s, languages.iter().map(loss).collect());
        }
        chart.write(out, "forgetting-lm")?;
        written.push(out.join("forgetting-lm.svg"));
    }
    let untrained: Vec<&String> = report.evaluated_directions.iter().filter(|d| !report.trained_directions.contains(d)).collect();
    if !untrained.is_empty() {
        let groups: Vec<(String, String)> = untrained.iter().flat_map(|d| report.test_sets().into_iter().map(move |t| (d.to_string(), t))).collect();
        let mut chart =
            landermt_plot::BarChart::new(format!("Forgetting: BLEU on directions no system was trained on ({})", report.model), "BLEU", groups.iter().map(|(d, t)| format!("{d} {t}")).collect());
        for s in &systems {
            chart = chart.series(*s, groups.iter().map(|(d, t)| report.bleu(s, d, t).unwrap_or(f64::NAN)).collect());
        }
        chart.write(out, "forgetting-bleu")?;
        written.push(out.join("forgetting-bleu.svg"));
    }
    Ok(written)
}

fn points(values: &[f64]) -> Vec<(f64, f64)> {
    values.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect()
}

fn selected(layers: &[usize]) -> Vec<f64> {
    layers.iter().map(|&l| l as f64).collect()
}

/// Mean block output per direction (fig. 4) and its layer-to-layer change D (fig. 5).
fn probe_charts(layers: &landermt_probe::Layers) -> Vec<(&'static str, LineChart)> {
    let mut activation = LineChart::new(format!("Mean block output on translation prompts ({})", layers.model), "block (0-based)", "mean activation A");
    let mut delta = LineChart::new(format!("Change of the mean block output, D_i = |A_i − A_i+1| ({})", layers.model), "block i (0-based)", "D_i");
    for d in &layers.directions {
        activation = activation.series(format!("{} (N = {})", d.direction, d.n), points(&d.a));
        delta = delta.series(d.direction.to_string(), points(&d.d));
    }
    delta = delta.series("mean over directions", points(&layers.mean_d));
    let note = format!("selected blocks ({:?}, k = {})", layers.rule, layers.k).to_lowercase();
    vec![("activation", activation.markers(note.clone(), selected(&layers.selected))), ("delta", delta.markers(note, selected(&layers.selected)))]
}

/// A run over several pairs: every pair's directions in one activation and one D figure (the
/// paper's figs. 4–5), each labelled with its pair's selected blocks.
fn pair_probe_charts(run: &Path) -> Result<Option<(LineChart, LineChart)>> {
    let Ok(entries) = std::fs::read_dir(run.join("pairs")) else { return Ok(None) };
    let mut found: Vec<(String, landermt_probe::Layers)> = Vec::new();
    for entry in entries {
        let path = entry?.path().join("layers.json");
        if let Ok(bytes) = std::fs::read(&path) {
            let layers = serde_json::from_slice(&bytes).with_context(|| format!("{}: not a layers.json", path.display()))?;
            found.push((path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), layers));
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let model = &found[0].1.model;
    let mut activation = LineChart::new(format!("Mean block output on translation prompts, every pair ({model})"), "block (0-based)", "mean activation A");
    let mut delta = LineChart::new(format!("D_i = |A_i − A_i+1|, every pair ({model})"), "block i (0-based)", "D_i");
    for (pair, layers) in &found {
        for d in &layers.directions {
            let label = format!("{} (pair {pair}: blocks {:?})", d.direction, layers.selected);
            activation = activation.series(label.clone(), points(&d.a));
            delta = delta.series(label, points(&d.d));
        }
    }
    Ok(Some((activation, delta)))
}

/// Per-layer mean awareness (S per sentence) of the general units and of each language's
/// specific units (figs. 6–7), and the number of specific units per language.
fn score_charts(scores: &Scores, neurons: &Neurons) -> Vec<(&'static str, LineChart)> {
    let what = MODULE.name();
    let mut general = LineChart::new(format!("Awareness of language-general {what} units (ε = {})", neurons.epsilon), "block (0-based)", "mean S per sentence");
    let mut specific = LineChart::new(format!("Awareness of language-specific {what} units, in their own language"), "block (0-based)", "mean S per sentence");
    let mut counts = LineChart::new(format!("Language-specific {what} units per language"), "block (0-based)", "units");
    let num_layers = scores.num_layers();
    let splits: Vec<_> = (0..num_layers).map(|l| landermt_score::split(&scores.modules[&(l, MODULE)].s, neurons.epsilon)).collect();
    let mean = |v: &[f64], units: &[usize]| if units.is_empty() { f64::NAN } else { units.iter().map(|&i| v[i]).sum::<f64>() / units.len() as f64 };
    for (li, lang) in scores.languages.iter().enumerate() {
        let sentences = neurons.counts.iter().find(|c| c.language == *lang).map_or(1, |c| c.sentences.max(1)) as f64;
        let per_layer = |units: &dyn Fn(usize) -> Vec<usize>| -> Vec<(f64, f64)> {
            (0..num_layers).map(|l| (l as f64, mean(&scores.modules[&(l, MODULE)].s[li], &units(l)) / sentences)).filter(|(_, y)| y.is_finite()).collect()
        };
        general = general.series(lang.name, per_layer(&|l| splits[l].general.clone()));
        specific = specific.series(format!("{}-specific", lang.name), per_layer(&|l| splits[l].specific[li].clone()));
        counts = counts.series(lang.name, (0..num_layers).map(|l| (l as f64, splits[l].specific[li].len() as f64)).collect());
    }
    // Over several pairs every block is scored; each pair's selection is in pairs-delta.
    let marked = if neurons.selected.len() == num_layers { Vec::new() } else { selected(&neurons.selected) };
    let note = "selected blocks";
    vec![("awareness-general", general.markers(note, marked.clone())), ("awareness-specific", specific.markers(note, marked.clone())), ("specific-counts", counts.markers(note, marked))]
}
