//! Stage 1, `layers.json`: the layers most relevant to the run's language pair.

use super::*;

/// Stage 1: `layers.json`.
pub fn probe(cfg: &RunConfig) -> Result<()> {
    let p = &cfg.probe;
    let model = cfg.model.load(false)?;
    if let Some(blocks) = &p.layers {
        // Refused before minutes of forward passes, not after them.
        landermt_probe::given(blocks, model.config.num_layers).with_context(|| format!("{}: probe.layers = {blocks:?}", cfg.source.display()))?;
    }
    let _span = tracing::info_span!("probe").entered();
    let start = std::time::Instant::now();
    let mut curves = Vec::new();
    for direction in cfg.directions() {
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
    let layers = match &p.layers {
        Some(blocks) => landermt_probe::given_layers(cfg.model.describe(), curves, blocks).with_context(|| format!("{}: probe.layers = {blocks:?}", cfg.source.display()))?,
        None => landermt_probe::layers(cfg.model.describe(), curves, p.rule, p.k).with_context(|| format!("probe.k = {} with rule {:?}", p.k, p.rule))?,
    };
    let out = cfg.run.dir.join("layers.json");
    write_json(&out, &layers)?;
    println!("probe: selected layers {:?} (rule {:?}, k {}) in {:.1}s → {}", layers.selected, layers.rule, layers.k, start.elapsed().as_secs_f64(), out.display());
    figures(cfg);
    Ok(())
}
