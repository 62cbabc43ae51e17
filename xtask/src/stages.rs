//! Running the stages from a run config: read inputs, call the stage's library, write its
//! artifact atomically into the run directory.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use landermt_data::{Direction, read_parallel};
use landermt_model::LanguageModel;

use crate::config::RunConfig;

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}").expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

fn directions(cfg: &RunConfig) -> Result<Vec<Direction>> {
    cfg.run.directions.iter().map(|d| d.parse().with_context(|| format!("direction `{d}`"))).collect()
}

/// Stage 1: `layers.json`.
pub fn probe(cfg: &RunConfig) -> Result<()> {
    let p = &cfg.probe;
    let path = cfg.model.resolve(true)?;
    let model = LanguageModel::load(&path, &cfg.model.backend.device()?)?;
    let _span = tracing::info_span!("probe").entered();
    let start = std::time::Instant::now();
    let mut curves = Vec::new();
    for direction in directions(cfg)? {
        let mut pairs = read_parallel(&p.data, direction)?;
        if pairs.len() < p.n {
            tracing::warn!(%direction, available = pairs.len(), wanted = p.n, "fewer sentences than probe.n; using what there is");
        }
        pairs.truncate(p.n);
        let prompts: Vec<String> = pairs.iter().map(|pair| landermt_probe::prompt(direction, pair)).collect();
        let pb = bar(prompts.len(), &direction.to_string());
        let a = landermt_probe::block_means(&model, &prompts, p.batch_size, &|n| pb.inc(n as u64))?;
        pb.finish();
        curves.push(landermt_probe::curves(direction, &a));
    }
    let layers = landermt_probe::layers(cfg.model.describe(), curves, p.rule, p.k)
        .with_context(|| format!("probe.k = {} with rule {:?}", p.k, p.rule))?;
    let out = cfg.run.dir.join("layers.json");
    let json = serde_json::to_vec_pretty(&layers)?;
    landermt_model::atomic::write_atomic(&out, |w| w.write_all(&json))?;
    println!(
        "probe: selected layers {:?} (rule {:?}, k {}) in {:.1}s → {}",
        layers.selected,
        layers.rule,
        layers.k,
        start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}


#[cfg(test)]
mod tests {
    use super::*;

    /// configs/quick.toml with its project-relative paths made absolute and a scratch run dir.
    fn quick(run_dir: &std::path::Path) -> RunConfig {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cfg = RunConfig::load(&root.join("configs/quick.toml")).unwrap();
        cfg.model.path = cfg.model.path.map(|p| root.join(p));
        if let landermt_data::ParallelSource::Flores { dir, .. } = &mut cfg.probe.data {
            *dir = root.join(&*dir);
        }
        cfg.run.dir = run_dir.to_path_buf();
        cfg
    }

    #[test]
    fn probe_writes_layers_json_for_the_quick_config() {
        let dir = tempfile::tempdir().unwrap();
        probe(&quick(dir.path())).unwrap();
        let layers: landermt_probe::Layers = serde_json::from_slice(&std::fs::read(dir.path().join("layers.json")).unwrap()).unwrap();
        assert_eq!(layers.version, landermt_probe::LAYERS_VERSION);
        assert_eq!(layers.directions.iter().map(|d| (d.direction.to_string(), d.n)).collect::<Vec<_>>(), [("en-fr".into(), 6), ("fr-en".into(), 6)]);
        // transformers' selection on the same model and lines (tests/fixtures/probe/reference.json).
        assert_eq!(layers.selected, vec![2, 3]);
    }

    #[test]
    fn probe_refuses_k_larger_than_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = quick(dir.path());
        cfg.probe.k = 6;
        let err = format!("{:#}", probe(&cfg).unwrap_err());
        assert!(err.contains("k = 6") && err.contains("has 4"), "{err}");
        assert!(!dir.path().join("layers.json").exists());
    }
}
