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
    route.check = Some(check(&base, &routed, &cfg.route.check, pair)?);

    let out = cfg.run.dir.join(cfg.route_file());
    write_json(&out, &route)?;
    let c = route.check.as_ref().expect("just measured");
    println!("route: {}–{} pair, car = {:?} → {}", pair[0], pair[1], route.car, out.display());
    for l in &route.layers {
        println!("  layer {:>2}: {} general, {} pair-specific, {} other-specific units; static CAR {:.4}", l.layer, l.counts[0], l.counts[1], l.counts[2], l.static_car);
    }
    println!(
        "  before training, on {} held-out sentences: LM loss {:.4} → {:.4}, largest logit change {:.4}",
        c.sentences, c.base_loss, c.routed_loss, c.max_abs_logit_diff
    );
    Ok(())
}

/// Stage 3 of a joint run: `routes.json`, one route per language pair over the run's one layer
/// set, each checked on held-out text of its pair.
fn joint_routes(cfg: &RunConfig, neurons: &landermt_score::Neurons, scores: &landermt_score::Scores) -> Result<()> {
    let layers = read_layers(cfg)?;
    let base = cfg.model.load(false)?;
    let mut routes = Vec::new();
    for pair in landermt_route::pairs_of_all(&cfg.directions()) {
        let mut route = landermt_route::Route { start: cfg.route.start, ..landermt_route::build(neurons, scores, pair, &layers.selected, cfg.route.car)? };
        let mut routed = base.clone();
        landermt_route::apply(&mut routed, &route)?;
        route.check = Some(check(&base, &routed, &cfg.route.check, pair)?);
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

/// Mean LM loss of both models and their largest logit difference, sentence by sentence.
fn check(base: &LanguageModel, routed: &LanguageModel, data: &landermt_data::MonoSource, pair: [landermt_data::Language; 2]) -> Result<landermt_route::Check> {
    use landermt_model::{Batch, Taps, loss::sequence_losses_of_logits};
    let scalar = |t: burn::tensor::Tensor<1>| -> f64 { t.into_data().try_into_vec::<f32>().expect("f32")[0] as f64 };
    let (mut n, mut base_loss, mut routed_loss, mut worst) = (0usize, 0f64, 0f64, 0f64);
    for lang in pair {
        for text in read_monolingual(data, lang)? {
            let ids = base.encode(&text)?;
            let batch = Batch::single(&ids);
            // Full logits once per model: the loss reads all but the last position.
            let lb = base.net.logits(base.net.forward(&batch, None, &mut Taps::none()));
            let lr = routed.net.logits(routed.net.forward(&batch, None, &mut Taps::none()));
            if ids.len() >= 2 {
                let predicted = ids.len() - 1;
                base_loss += scalar(sequence_losses_of_logits(&batch, lb.clone().narrow(1, 0, predicted)));
                routed_loss += scalar(sequence_losses_of_logits(&batch, lr.clone().narrow(1, 0, predicted)));
            }
            let diff = lb.sub(lr).abs().max().reshape([1]);
            worst = worst.max(scalar(diff));
            n += 1;
        }
    }
    Ok(landermt_route::Check { sentences: n, base_loss: base_loss / n.max(1) as f64, routed_loss: routed_loss / n.max(1) as f64, max_abs_logit_diff: worst })
}
