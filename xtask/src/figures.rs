//! The analysis figures of stages 1–2 (the paper's figs. 4–7), as CSV + SVG in
//! `{run}/figures/`: whatever the run's artifacts allow is drawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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
        let layers: landermt_probe::Layers =
            serde_json::from_slice(&std::fs::read(&layers_path)?).with_context(|| format!("{}: not a layers.json", layers_path.display()))?;
        for chart in probe_charts(&layers) {
            let stem = chart.0;
            save(chart.1, stem)?;
        }
    }
    let (scores_path, neurons_path) = (run.join("neurons.safetensors"), run.join("neurons.json"));
    if scores_path.exists() && neurons_path.exists() {
        let scores = Scores::read(&scores_path)?;
        let neurons: Neurons =
            serde_json::from_slice(&std::fs::read(&neurons_path)?).with_context(|| format!("{}: not a neurons.json", neurons_path.display()))?;
        for chart in score_charts(&scores, &neurons) {
            let stem = chart.0;
            save(chart.1, stem)?;
        }
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
            (0..num_layers)
                .map(|l| (l as f64, mean(&scores.modules[&(l, MODULE)].s[li], &units(l)) / sentences))
                .filter(|(_, y)| y.is_finite())
                .collect()
        };
        general = general.series(lang.name, per_layer(&|l| splits[l].general.clone()));
        specific = specific.series(format!("{}-specific", lang.name), per_layer(&|l| splits[l].specific[li].clone()));
        counts = counts.series(lang.name, (0..num_layers).map(|l| (l as f64, splits[l].specific[li].len() as f64)).collect());
    }
    let note = "selected blocks";
    vec![
        ("awareness-general", general.markers(note, selected(&neurons.selected))),
        ("awareness-specific", specific.markers(note, selected(&neurons.selected))),
        ("specific-counts", counts.markers(note, selected(&neurons.selected))),
    ]
}
