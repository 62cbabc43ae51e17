//! Stage 3, `route.json`: the partition of the selected layers' units, checked on held-out text.

use super::*;

/// Stage 3: `route.json`, with the routed model compared with the base model on held-out text.
pub fn route(cfg: &RunConfig) -> Result<()> {
    let neurons: landermt_score::Neurons = read_artifact(cfg, "neurons.json", "score")?;
    if neurons.version != landermt_score::NEURONS_VERSION {
        bail!("neurons.json: schema version {}, this build reads {}; run the score stage again", neurons.version, landermt_score::NEURONS_VERSION);
    }
    let scores = landermt_score::Scores::read(&cfg.neurons_dir().join("neurons.safetensors"))?;
    if cfg.is_joint() {
        return joint_routes(cfg, &neurons, &scores);
    }
    let pair = landermt_route::pair_of(&cfg.directions())?;
    // The pair's own layers: over several pairs, neurons.* covers every layer.
    let layers = read_layers(cfg)?;
    let mut route = landermt_route::Route { start: cfg.route.start, ..landermt_route::build(&neurons, &scores, pair, &layers.selected, cfg.route.car)? };

    let base = cfg.model.load(false)?;
    let mut routed = base.clone();
    landermt_route::apply(&mut routed, &route)?;
    route.check = Some(landermt_route::check(&base, &routed, &check_texts(&cfg.route.check, pair)?)?);

    let out = cfg.run.dir.join(cfg.route_file());
    write_json(&out, &route)?;
    let c = route.check.as_ref().expect("just measured");
    println!("route: {}–{} pair, car = {:?} → {}", pair[0], pair[1], route.car, out.display());
    for l in &route.layers {
        println!("  layer {:>2}: {} general, {} pair-specific, {} other-specific units; static CAR {:.4}", l.layer, l.counts[0], l.counts[1], l.counts[2], l.static_car);
    }
    println!("  before training, on {} held-out sentences: LM loss {:.4} → {:.4}, largest logit change {:.4}", c.sentences, c.base_loss, c.routed_loss, c.max_abs_logit_diff);
    Ok(())
}

/// Stage 3 of a joint run: `routes.json`, one route per language pair over the run's one layer
/// set, each checked on held-out text of its pair.
fn joint_routes(cfg: &RunConfig, neurons: &landermt_score::Neurons, scores: &landermt_score::Scores) -> Result<()> {
    let layers = read_layers(cfg)?;
    let base = cfg.model.load(false)?;
    let mut routes = Vec::new();
    for pair in cfg.pairs().into_iter().map(|p| p.languages) {
        let mut route = landermt_route::Route { start: cfg.route.start, ..landermt_route::build(neurons, scores, pair, &layers.selected, cfg.route.car)? };
        let mut routed = base.clone();
        landermt_route::apply(&mut routed, &route)?;
        route.check = Some(landermt_route::check(&base, &routed, &check_texts(&cfg.route.check, pair)?)?);
        let c = route.check.as_ref().expect("just measured");
        let units = route.layers.iter().map(|l| format!("{}: {}/{}/{}", l.layer, l.counts[0], l.counts[1], l.counts[2])).collect::<Vec<_>>().join(", ");
        println!("route: {}–{} (general/pair-specific/other per layer: {units}); held-out LM loss {:.4} → {:.4}", pair[0], pair[1], c.base_loss, c.routed_loss);
        routes.push(route);
    }
    let out = cfg.run.dir.join(cfg.route_file());
    write_json(&out, &landermt_route::Routes { version: landermt_route::ROUTES_VERSION, routes })?;
    println!("route: {} pairs over layers {:?}, car = {:?} → {}", cfg.pairs().len(), layers.selected, cfg.route.car, out.display());
    Ok(())
}

/// The route check's sentences: `data`'s text of each language of the pair, one after the other.
fn check_texts(data: &landermt_data::MonoSource, pair: [landermt_data::Language; 2]) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for lang in pair {
        texts.extend(read_monolingual(data, lang)?);
    }
    Ok(texts)
}
