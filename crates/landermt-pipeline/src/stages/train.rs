//! Stage 4, `train/{system}/`: a method fine-tuned into a delta, and the models built from one.

use super::*;

/// What a system trains from: the model on an autodiff device (routed for the LANDeRMT
/// variants), the unit set, the upstream facts a checkpoint records, the selected layers, and
/// in a joint run each direction's unit set and routing.
pub(super) struct Prepared {
    pub model: LanguageModel,
    pub units: Option<landermt_train::UnitSet>,
    pub upstream: serde_json::Value,
    pub selected: Vec<usize>,
    pub joint: Option<JointUnits>,
}

/// A joint run's LANDeRMT variant: per direction, its pair's units and routing.
pub(super) struct JointUnits {
    pub directions: Vec<Direction>,
    pub units: Vec<landermt_train::UnitSet>,
    pub routing: Vec<Vec<(usize, landermt_model::nn::router::RouterMasks)>>,
}

impl Prepared {
    /// The trainee of `system`, with its joint run's routing and update sets where it has them.
    pub fn trainee(&self, cfg: &RunConfig, system: System) -> landermt_train::Trainee {
        let t = cfg.train_for(system.method);
        let seed = system.seed.unwrap_or(t.seed);
        let mut trainee = landermt_train::Trainee::with_added(self.model.net.clone(), system.method, self.units.as_ref(), &self.selected, &t.added(), seed);
        if let Some(j) = &self.joint {
            trainee.joint = Some(landermt_train::joint::Joint::new(&trainee.delta, j.directions.clone(), &j.units, j.routing.clone()));
        }
        trainee
    }
}

pub(super) fn prepare(cfg: &RunConfig, method: landermt_train::Method) -> Result<Prepared> {
    use landermt_train::Method;
    // `full` trains every weight, so they are f32 whatever `model.dtype` says.
    let dtype = if method == Method::Full { landermt_model::WeightDtype::F32 } else { cfg.model.dtype };
    let mut model = cfg.model.load_in(true, dtype)?;
    let layers = read_layers(cfg)?;
    let mut upstream = serde_json::json!({ "layers": layers.selected });
    let selective = method.is_selective();
    let (mut units, mut joint) = (None, None);
    if selective && cfg.is_joint() {
        let routes: landermt_route::Routes = read_artifact(cfg, cfg.route_file(), "route")?;
        let neurons: landermt_score::Neurons = read_artifact(cfg, "neurons.json", "score")?;
        let first = routes.routes.first().context("routes.json holds no route")?;
        landermt_route::apply(&mut model, first)?;
        upstream["routes"] = serde_json::to_value(routes.routes.iter().map(|r| (r.pair, r.layers.iter().map(|l| (l.layer, l.counts, l.static_car)).collect::<Vec<_>>())).collect::<Vec<_>>())?;
        upstream["car"] = serde_json::to_value(first.car)?;
        if !first.start.is_paper() {
            upstream["start"] = serde_json::to_value(first.start)?;
        }
        let directions = cfg.directions();
        let (mut per_direction, mut routing) = (Vec::new(), Vec::new());
        for d in &directions {
            let route = routes.of_pair(d.src, d.tgt).with_context(|| format!("{}: no route for {d}; run the route stage again", cfg.route_file()))?;
            per_direction.push(method.units(route, &neurons).expect("a LANDeRMT variant has units"));
            routing.push(landermt_route::router_masks(route, model.config.hidden_size, &model.net.device()));
        }
        units = Some(landermt_train::method::union(&per_direction));
        joint = Some(JointUnits { directions, units: per_direction, routing });
    } else if method == Method::Lape {
        (units, joint) = lape_units(cfg, &mut upstream)?;
    } else if selective {
        let route: landermt_route::Route = read_artifact(cfg, "route.json", "route")?;
        let neurons: landermt_score::Neurons = read_artifact(cfg, "neurons.json", "score")?;
        landermt_route::apply(&mut model, &route)?;
        upstream["route"] = serde_json::to_value(route.layers.iter().map(|l| (l.layer, &l.counts, l.static_car)).collect::<Vec<_>>())?;
        upstream["car"] = serde_json::to_value(route.car)?;
        // Keyed only when not the paper's, so that older checkpoints still resume.
        if !route.start.is_paper() {
            upstream["start"] = serde_json::to_value(route.start)?;
        }
        units = method.units(&route, &neurons);
    }
    Ok(Prepared { model, units, upstream, selected: layers.selected, joint })
}

/// `lape`'s units from `lape.json`: the pair's two languages' in every block, or in a joint run
/// each direction's own (no routing).
fn lape_units(cfg: &RunConfig, upstream: &mut serde_json::Value) -> Result<(Option<landermt_train::UnitSet>, Option<JointUnits>)> {
    let path = cfg.neurons_dir().join("lape.json");
    let lape: landermt_score::lape::Lape = read_optional(&path)?.with_context(|| format!("{}: missing; run `cargo xtask score --config …` with `lape` among [eval] methods first", path.display()))?;
    upstream["lape"] = serde_json::to_value(lape.settings)?;
    let directions = cfg.directions();
    let sets: Vec<landermt_train::UnitSet> = directions.iter().map(|d| landermt_train::method::lape_units(&lape, &[d.src, d.tgt])).collect();
    let units = landermt_train::method::union(&sets);
    let joint = cfg.is_joint().then(|| JointUnits { routing: vec![Vec::new(); directions.len()], directions, units: sets });
    Ok((Some(units), joint))
}

/// Stage 4: trains `system` (a method, on every direction of the run or on one) into
/// `{run}/train/{system}/`: `delta.safetensors`, `checkpoint.safetensors` (resumed when
/// present), `train.json` and the loss curve.
pub fn train(cfg: &RunConfig, system: System) -> Result<()> {
    use landermt_train::{Method, trainer};
    let method = system.method;
    let t = &cfg.train_for(method);
    // A seeded system (`[eval] seeds`) trains with its own seed: data order, LoRA's start.
    let settings = landermt_train::Settings { seed: system.seed.unwrap_or(t.seed), ..t.settings() };
    let name = system.name();
    let dir = crate::kept::train_dir(cfg, system);
    let prepared = prepare(cfg, method)?;
    let (model, mut upstream) = (&prepared.model, prepared.upstream.clone());
    let pad = model.config.pad_token_id.unwrap_or(0);
    let directions = system.directions(&cfg.directions());
    let (train_sets, dev) = examples(cfg, model, t, &settings, &directions)?;

    let total_params = burn::module::Module::num_params(&model.net);
    let added = t.added();
    if matches!(method, Method::Lora | Method::Adapter | Method::AdapterLora) {
        upstream["added"] = serde_json::to_value(&added)?;
    }
    let trainee = prepared.trainee(cfg, system);
    let trainable: usize = landermt_train::ids::trainable(&trainee).iter().map(|(_, t)| t.shape().num_elements()).sum();
    let setup = serde_json::json!({
        "model": cfg.model.describe(),
        "method": name,
        "directions": directions,
        "data": t.data, "pairs": t.pairs, "dev": t.dev, "dev_pairs": t.dev_pairs,
        "settings": settings,
        "prompt": cfg.prompt,
        "upstream": upstream,
    });
    println!("train `{name}`: {trainable} trainable parameters of {total_params} ({:.3} %)", 100.0 * trainable as f64 / total_params as f64);
    if method == Method::None {
        println!("  nothing to train");
        return Ok(());
    }
    crate::kept::forget(&dir)?;
    let pb = bar(0, &name);
    let run = trainer::Run {
        settings: &settings,
        train: &train_sets,
        dev: &dev,
        pad_id: pad,
        setup,
        dir: &dir,
        stop_after: None,
        progress: &|step, total, loss| {
            pb.set_length(total as u64);
            pb.set_position(step as u64);
            pb.set_message(format!("{name} {loss:.3}"));
        },
    };
    let (_, state) = trainer::run(trainee, &run)?;
    pb.finish();
    crate::kept::record(&dir)?;

    write_summary(cfg, &dir, system, &state, &settings, t, trainable, total_params, &added)
}

/// `train.json` (what the report and sweeps read), the loss curve, and a summary line.
#[allow(clippy::too_many_arguments)]
fn write_summary(
    cfg: &RunConfig,
    dir: &std::path::Path,
    system: System,
    state: &landermt_train::trainer::State,
    settings: &landermt_train::trainer::Settings,
    t: &crate::config::TrainSection,
    trainable: usize,
    total_params: usize,
    added: &landermt_train::added::AddedSettings,
) -> Result<()> {
    use landermt_train::Method;
    let (method, name) = (system.method, system.name());
    let summary = serde_json::json!({
        "method": name, "trainable_parameters": trainable, "model_parameters": total_params,
        "trainable_share": trainable as f64 / total_params as f64,
        "steps": state.step, "tokens": state.tokens, "seconds": state.seconds,
        "tokens_per_second": state.tokens as f64 / state.seconds.max(1e-9),
        "train_loss": state.losses, "validation_loss": state.validation,
        "settings": settings, "pairs": t.pairs, "prompt": cfg.prompt,
        "added": matches!(method, Method::Lora | Method::Adapter | Method::AdapterLora).then_some(added),
    });
    write_json(&dir.join("train.json"), &summary)?;
    let curve = landermt_plot::LineChart::new(format!("Training loss, {name} ({})", cfg.model.describe()), "optimizer step", "target cross-entropy (nats)")
        .series("train", state.losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect())
        .series("validation", state.validation.iter().map(|&(s, l)| (s as f64, l)).collect());
    curve.write(dir, "loss")?;
    println!(
        "  {} steps, {:.1} tokens/s, loss {:.4} → {:.4}, validation {} → {}",
        state.step,
        state.tokens as f64 / state.seconds.max(1e-9),
        state.losses.first().copied().unwrap_or(f64::NAN),
        state.losses.last().copied().unwrap_or(f64::NAN),
        // The last validation is the trained model's (the sweep's dev loss); the first shows the trend.
        match (state.validation.first(), state.validation.last()) {
            (Some(a), Some(b)) if a.0 != b.0 => format!("{:.4} (step {}) → {:.4} (step {})", a.1, a.0, b.1, b.0),
            (_, Some(b)) => format!("{:.4} (step {})", b.1, b.0),
            _ => "not measured".into(),
        },
        dir.display()
    );
    Ok(())
}

/// The training examples of each direction (the first `train.pairs` pairs of `train.data`, in
/// the templates `[prompt] train` picks) and the dev examples (always `[prompt] template`).
fn examples(
    cfg: &RunConfig,
    model: &LanguageModel,
    t: &crate::config::TrainSection,
    settings: &landermt_train::trainer::Settings,
    directions: &[Direction],
) -> Result<(Vec<Vec<landermt_train::Example>>, Vec<landermt_train::Example>)> {
    let (mut train_sets, mut dev) = (Vec::new(), Vec::new());
    for (i, &direction) in directions.iter().enumerate() {
        let mut pairs = read_parallel(&t.data, direction)?;
        if pairs.len() < t.pairs {
            tracing::warn!(%direction, available = pairs.len(), wanted = t.pairs, "fewer training pairs than train.pairs; using what there is");
        }
        pairs.truncate(t.pairs);
        let mut set = Vec::new();
        for (k, pair) in pairs.iter().enumerate() {
            let template = landermt_train::data::template(&cfg.prompt.template, cfg.prompt.train, settings.seed, i, k);
            if let Some(ex) = landermt_train::example(model, direction, pair, template, settings.max_len)? {
                set.push(ex);
            }
        }
        if set.len() < pairs.len() {
            tracing::warn!(%direction, skipped = pairs.len() - set.len(), max_len = settings.max_len, "targets longer than max_len were skipped");
        }
        train_sets.push(set);
        for pair in read_parallel(&t.dev, direction)?.iter().take(t.dev_pairs) {
            if let Some(ex) = landermt_train::example(model, direction, pair, &cfg.prompt.template, settings.max_len)? {
                dev.push(ex);
            }
        }
    }
    Ok((train_sets, dev))
}

/// The model a system evaluates: the base model for `none`, else base + its trained delta
/// (with the routing for the LANDeRMT variants), without autodiff.
pub fn trained_model(cfg: &RunConfig, system: System) -> Result<LanguageModel> {
    if system.method == landermt_train::Method::None {
        return cfg.model.load(false);
    }
    with_delta(cfg, system, &delta_path(cfg, system)?)
}

/// How a trained system reads each direction: in a joint run a LANDeRMT variant is routed with
/// the route of the direction's pair (of the first pair holding a language, for text in that
/// language alone); any other system reads every direction as loaded.
pub struct Routing(Option<landermt_route::Routes>);

impl Routing {
    pub fn of(cfg: &RunConfig, system: System) -> Result<Self> {
        if cfg.is_joint() && system.method.is_selective() { Ok(Self(Some(read_artifact(cfg, cfg.route_file(), "route")?))) } else { Ok(Self(None)) }
    }

    /// `model` as it translates `direction`.
    pub fn for_direction(&self, model: &LanguageModel, direction: Direction) -> LanguageModel {
        routed(model, self.0.as_ref().and_then(|r| r.of_pair(direction.src, direction.tgt)))
    }

    /// `directions`' indices grouped by the routing each is read with, in order of first
    /// appearance: one group where every direction reads the model as it is (per-pair runs,
    /// joint runs' unrouted systems), one per pair for a joint run's selective systems. Each
    /// group can decode as one stream.
    pub fn streams(&self, directions: &[Direction]) -> Vec<Vec<usize>> {
        let route = |d: &Direction| self.0.as_ref().and_then(|r| r.index_of_pair(d.src, d.tgt));
        let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
        for (i, d) in directions.iter().enumerate() {
            match groups.iter_mut().find(|(r, _)| *r == route(d)) {
                Some((_, group)) => group.push(i),
                None => groups.push((route(d), vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// `model` as it reads text in `language` (the LM loss of forgetting).
    pub fn for_language(&self, model: &LanguageModel, language: landermt_data::Language) -> LanguageModel {
        routed(model, self.0.as_ref().and_then(|r| r.of_language(language)))
    }
}

/// A copy of `model` with `route`'s router constants in place of its own (the learned CAR's w
/// and b kept).
fn routed(model: &LanguageModel, route: Option<&landermt_route::Route>) -> LanguageModel {
    let mut m = model.clone();
    if let Some(route) = route {
        let masks = landermt_route::router_masks(route, m.config.hidden_size, &m.net.device());
        landermt_route::swap_masks(&mut m.net, &masks);
    }
    m
}

/// `{run}/train/{system}/delta.safetensors`, or an error naming the command that makes it.
pub(super) fn delta_path(cfg: &RunConfig, system: System) -> Result<std::path::PathBuf> {
    let delta = crate::kept::train_dir(cfg, system).join(crate::kept::DELTA);
    if !delta.exists() {
        return Err(missing_delta(cfg, system));
    }
    Ok(delta)
}

/// The error for a system whose delta is needed but absent, naming the command that makes it.
pub(super) fn missing_delta(cfg: &RunConfig, system: System) -> anyhow::Error {
    let delta = crate::kept::train_dir(cfg, system).join(crate::kept::DELTA);
    let only = system.only.map(|d| format!(" --direction {d}")).unwrap_or_default();
    anyhow::anyhow!("{}: missing; run `cargo xtask train --config … --method {}{only}` first", delta.display(), system.method.name())
}

/// The base model with `delta` trained in (routed for the LANDeRMT variants), without autodiff.
fn with_delta(cfg: &RunConfig, system: System, delta: &std::path::Path) -> Result<LanguageModel> {
    let (mut model, trainee) = trained(cfg, system, delta)?;
    model.net = burn::module::Module::valid(&trainee.network());
    Ok(model)
}

/// The base model as loaded for `system` and its trainee with `delta` trained in.
pub(super) fn trained(cfg: &RunConfig, system: System, delta: &std::path::Path) -> Result<(LanguageModel, landermt_train::Trainee)> {
    let prepared = prepare(cfg, system.method)?;
    let trainee = prepared.trainee(cfg, system);
    let (trainee, _) = landermt_train::trainer::load_trained(delta, trainee)?;
    Ok((prepared.model, trainee))
}
