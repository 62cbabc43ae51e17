//! Running the stages from a run config: read inputs, call the stage's library, write its
//! artifact atomically into the run directory.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use landermt_data::{Direction, read_monolingual, read_parallel};
use landermt_model::LanguageModel;
use landermt_score::{Partial, Settings};

use crate::config::RunConfig;
use crate::report::{Comparison, LmRow, Report, Row, SystemInfo};
use crate::system::System;

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}").expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    landermt_model::atomic::write_atomic(path, |w| w.write_all(&json))?;
    Ok(())
}

/// Stage 1: `layers.json`.
pub fn probe(cfg: &RunConfig) -> Result<()> {
    let p = &cfg.probe;
    let path = cfg.model.resolve(true)?;
    let model = LanguageModel::load(&path, &cfg.model.device()?)?;
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
    let layers = landermt_probe::layers(cfg.model.describe(), curves, p.rule, p.k)
        .with_context(|| format!("probe.k = {} with rule {:?}", p.k, p.rule))?;
    let out = cfg.run.dir.join("layers.json");
    write_json(&out, &layers)?;
    println!(
        "probe: selected layers {:?} (rule {:?}, k {}) in {:.1}s → {}",
        layers.selected,
        layers.rule,
        layers.k,
        start.elapsed().as_secs_f64(),
        out.display()
    );
    figures(cfg);
    Ok(())
}

/// Redraws the run's figures; a figure that cannot be drawn is not worth failing a stage.
fn figures(cfg: &RunConfig) {
    match crate::figures::write_all(&cfg.run.dir) {
        Ok(_) => println!("  figures: {}", cfg.run.dir.join("figures").display()),
        Err(e) => tracing::warn!("figures not drawn: {e:#}"),
    }
}

/// Reads `layers.json` of the run, naming the command that makes it when it is missing.
pub fn read_layers(cfg: &RunConfig) -> Result<landermt_probe::Layers> {
    let layers: landermt_probe::Layers = read_artifact(cfg, "layers.json", "probe")?;
    if layers.version != landermt_probe::LAYERS_VERSION {
        bail!("{}: schema version {}, this build reads {}; run the probe again", cfg.run.dir.join("layers.json").display(), layers.version, landermt_probe::LAYERS_VERSION);
    }
    Ok(layers)
}

/// Stage 2: `neurons.safetensors` and `neurons.json`. Each language's scores are saved under
/// `score/` as soon as they are done, so a killed run resumes at the next language.
pub fn score(cfg: &RunConfig) -> Result<()> {
    let sc = &cfg.score;
    let layers = read_layers(cfg)?;
    let languages = cfg.score_languages();
    let path = cfg.model.resolve(true)?;
    let model = landermt_score::frozen(LanguageModel::load(&path, &cfg.model.device()?.autodiff())?);
    if layers.num_layers != model.config.num_layers {
        bail!("layers.json was measured on a {}-layer model, but {} has {}; run the probe again", layers.num_layers, path.display(), model.config.num_layers);
    }
    let _span = tracing::info_span!("score").entered();
    let start = std::time::Instant::now();
    let mut per_language = Vec::new();
    for lang in &languages {
        let key = format!("model {}; data {:?}; n {}; language {lang}; version {}", cfg.model.describe(), sc.data, sc.n, landermt_score::NEURONS_VERSION);
        let partial = cfg.run.dir.join("score").join(format!("{lang}.json"));
        if let Some(done) = Partial::load(&partial, &key) {
            tracing::info!(%lang, path = %partial.display(), "scores of this language were already computed; reusing them");
            per_language.push(done);
            continue;
        }
        let mut sentences = read_monolingual(&sc.data, *lang)?;
        if sentences.len() < sc.n {
            tracing::warn!(%lang, available = sentences.len(), wanted = sc.n, "fewer sentences than score.n; using what there is");
        }
        sentences.truncate(sc.n);
        let ids = sentences.iter().map(|s| model.encode(s)).collect::<landermt_model::Result<Vec<_>>>()?;
        let pb = bar(ids.len(), lang.code);
        let t0 = std::time::Instant::now();
        let a = landermt_score::awareness(&model, &ids, sc.batch_size, &|n| pb.inc(n as u64));
        pb.finish();
        tracing::info!(%lang, sentences = a.sentences, tokens = a.positions, tokens_per_s = a.positions as f64 / t0.elapsed().as_secs_f64(), "scored");
        Partial::new(key, &a).save(&partial)?;
        per_language.push(a);
    }
    let settings = Settings {
        model: cfg.model.describe(),
        languages: languages.clone(),
        data: sc.data.clone(),
        epsilon: sc.epsilon,
        num_layers: model.config.num_layers,
        selected: layers.selected.clone(),
    };
    let (scores, neurons) = landermt_score::neurons(&settings, &per_language)?;
    scores.write(&cfg.run.dir.join("neurons.safetensors"))?;
    let out = cfg.run.dir.join("neurons.json");
    write_json(&out, &neurons)?;
    println!("score: {} languages in {:.1}s → {}", languages.len(), start.elapsed().as_secs_f64(), out.display());
    for l in &neurons.layers {
        let ffn = &l.modules["ffn_act"];
        let specific: Vec<String> = languages.iter().map(|lang| format!("{lang} {}", ffn.counts[lang.code])).collect();
        println!("  layer {:>2} ffn_act: {} general, specific {}", l.layer, ffn.counts["general"], specific.join(", "));
    }
    figures(cfg);
    Ok(())
}

/// Reads a JSON artifact of the run, naming the command that makes it when it is missing.
fn read_artifact<T: serde::de::DeserializeOwned>(cfg: &RunConfig, file: &str, stage: &str) -> Result<T> {
    let path = cfg.run.dir.join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("{}: missing; run `cargo xtask {stage} --config …` first", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a valid {file}", path.display()))
}

/// Stage 3: `route.json`, with the routed model compared with the base model on held-out text.
pub fn route(cfg: &RunConfig) -> Result<()> {
    let neurons: landermt_score::Neurons = read_artifact(cfg, "neurons.json", "score")?;
    if neurons.version != landermt_score::NEURONS_VERSION {
        bail!("neurons.json: schema version {}, this build reads {}; run the score stage again", neurons.version, landermt_score::NEURONS_VERSION);
    }
    let scores = landermt_score::Scores::read(&cfg.run.dir.join("neurons.safetensors"))?;
    let pair = landermt_route::pair_of(&cfg.directions())?;
    let mut route = landermt_route::build(&neurons, &scores, pair, cfg.route.car)?;

    let path = cfg.model.resolve(true)?;
    let base = LanguageModel::load(&path, &cfg.model.device()?)?;
    let mut routed = base.clone();
    landermt_route::apply(&mut routed, &route)?;
    route.check = Some(check(&base, &routed, &cfg.route.check, pair)?);

    let out = cfg.run.dir.join("route.json");
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

/// The model on an autodiff device (routed for the LANDeRMT variants), the unit set, the
/// upstream facts a checkpoint records, and the selected layers.
fn prepare(cfg: &RunConfig, method: landermt_train::Method) -> Result<(LanguageModel, Option<landermt_train::UnitSet>, serde_json::Value, Vec<usize>)> {
    use landermt_train::Method;
    let path = cfg.model.resolve(true)?;
    let mut model = LanguageModel::load(&path, &cfg.model.device()?.autodiff())?;
    let layers = read_layers(cfg)?;
    let mut upstream = serde_json::json!({ "layers": layers.selected });
    let units = if matches!(method, Method::Landermt | Method::LandermtLs | Method::LandermtLg) {
        let route: landermt_route::Route = read_artifact(cfg, "route.json", "route")?;
        let neurons: landermt_score::Neurons = read_artifact(cfg, "neurons.json", "score")?;
        landermt_route::apply(&mut model, &route)?;
        upstream["route"] = serde_json::to_value(route.layers.iter().map(|l| (l.layer, &l.counts, l.static_car)).collect::<Vec<_>>())?;
        upstream["car"] = serde_json::to_value(route.car)?;
        method.units(&route, &neurons)
    } else {
        None
    };
    Ok((model, units, upstream, layers.selected))
}

/// Merges the base model and `{run}/train/{method}/delta.safetensors` into a Hugging Face
/// folder `out`. Refused for adapters and CAR-routed models (`route.car` other than `off`),
/// whose computation a plain transformers checkpoint cannot express.
pub fn export(cfg: &RunConfig, system: System, out: &std::path::Path) -> Result<()> {
    let delta = delta_path(cfg, system)?;
    let model = with_delta(cfg, system.method, &delta)?;
    landermt_model::export::write_hf_folder(&model, &model.net, out).with_context(|| format!("exporting `{system}` to {}", out.display()))?;
    println!("export: {} + {} → {}", cfg.model.describe(), delta.display(), out.display());
    Ok(())
}

/// Stage 4: trains `system` (a method, on every direction of the run or on one) into
/// `{run}/train/{system}/`: `delta.safetensors`, `checkpoint.safetensors` (resumed when
/// present), `train.json` and the loss curve.
pub fn train(cfg: &RunConfig, system: System) -> Result<()> {
    use landermt_train::{Method, Trainee, trainer};
    let method = system.method;
    let t = &cfg.train_for(method);
    let settings = t.settings();
    let name = system.name();
    let dir = cfg.run.dir.join("train").join(&name);
    let (model, units, mut upstream, selected) = prepare(cfg, method)?;
    let pad = model.config.pad_token_id.unwrap_or(0);
    let directions = system.directions(&cfg.directions());
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
            if let Some(ex) = landermt_train::example(&model, direction, pair, template, settings.max_len)? {
                set.push(ex);
            }
        }
        if set.len() < pairs.len() {
            tracing::warn!(%direction, skipped = pairs.len() - set.len(), max_len = settings.max_len, "targets longer than max_len were skipped");
        }
        train_sets.push(set);
        for pair in read_parallel(&t.dev, direction)?.iter().take(t.dev_pairs) {
            if let Some(ex) = landermt_train::example(&model, direction, pair, &cfg.prompt.template, settings.max_len)? {
                dev.push(ex);
            }
        }
    }

    let total_params = burn::module::Module::num_params(&model.net);
    let added = t.added();
    if matches!(method, Method::Lora | Method::Adapter | Method::AdapterLora) {
        upstream["added"] = serde_json::to_value(&added)?;
    }
    let trainee = Trainee::with_added(model.net.clone(), method, units.as_ref(), &selected, &added, settings.seed);
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

    let summary = serde_json::json!({
        "method": name, "trainable_parameters": trainable, "model_parameters": total_params,
        "trainable_share": trainable as f64 / total_params as f64,
        "steps": state.step, "tokens": state.tokens, "seconds": state.seconds,
        "tokens_per_second": state.tokens as f64 / state.seconds.max(1e-9),
        "train_loss": state.losses, "validation_loss": state.validation,
        "settings": settings, "pairs": t.pairs, "prompt": cfg.prompt,
        "added": matches!(method, Method::Lora | Method::Adapter | Method::AdapterLora).then_some(&added),
    });
    write_json(&dir.join("train.json"), &summary)?;
    let curve = landermt_plot::LineChart::new(format!("Training loss, {name} ({})", cfg.model.describe()), "optimizer step", "target cross-entropy (nats)")
        .series("train", state.losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect())
        .series("validation", state.validation.iter().map(|&(s, l)| (s as f64, l)).collect());
    curve.write(&dir, "loss")?;
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

/// The model a system evaluates: the base model for `none`, else base + its trained delta
/// (with the routing for the LANDeRMT variants), without autodiff.
pub fn trained_model(cfg: &RunConfig, system: System) -> Result<LanguageModel> {
    if system.method == landermt_train::Method::None {
        return Ok(LanguageModel::load(&cfg.model.resolve(true)?, &cfg.model.device()?)?);
    }
    with_delta(cfg, system.method, &delta_path(cfg, system)?)
}

/// `{run}/train/{system}/delta.safetensors`, or an error naming the command that makes it.
fn delta_path(cfg: &RunConfig, system: System) -> Result<std::path::PathBuf> {
    let delta = cfg.run.dir.join("train").join(system.name()).join("delta.safetensors");
    if !delta.exists() {
        let only = system.only.map(|d| format!(" --direction {d}")).unwrap_or_default();
        bail!("{}: missing; run `cargo xtask train --config … --method {}{only}` first", delta.display(), system.method.name());
    }
    Ok(delta)
}

/// The base model with `delta` trained in (routed for the LANDeRMT variants), without autodiff.
fn with_delta(cfg: &RunConfig, method: landermt_train::Method, delta: &std::path::Path) -> Result<LanguageModel> {
    let (mut model, units, _, selected) = prepare(cfg, method)?;
    let t = cfg.train_for(method);
    let trainee = landermt_train::Trainee::with_added(model.net.clone(), method, units.as_ref(), &selected, &t.added(), t.seed);
    let (trainee, _) = landermt_train::trainer::load_trained(delta, trainee)?;
    model.net = burn::module::Module::valid(&trainee.network());
    Ok(model)
}

/// Mean over sentences of the next-token loss (each sentence's mean over its predicted tokens).
fn lm_loss(model: &LanguageModel, text: &[String], batch_size: usize) -> Result<f64> {
    let pad = model.config.pad_token_id.unwrap_or(0);
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in text.chunks(batch_size.max(1)) {
        let ids = chunk.iter().map(|s| model.encode(s)).collect::<landermt_model::Result<Vec<_>>>()?;
        let batch = landermt_model::Batch::left_padded(&ids, pad);
        let hidden = model.net.forward(&batch, None, &mut landermt_model::Taps::none());
        let losses: Vec<f32> = landermt_model::loss::sequence_losses(&model.net, &batch, hidden).into_data().try_into_vec().expect("f32");
        sum += losses.iter().map(|&l| l as f64).sum::<f64>();
        n += losses.len();
    }
    Ok(sum / n.max(1) as f64)
}

/// A system's training facts for the report, from its `train.json` and delta.
fn system_info(cfg: &RunConfig, system: System, total_params: usize) -> Result<SystemInfo> {
    if system.method == landermt_train::Method::None {
        return Ok(SystemInfo {
            name: system.name(),
            trainable_parameters: 0,
            trainable_share: 0.0,
            train_tokens_per_second: None,
            final_validation_loss: None,
            delta_sha256: None,
            settings: None,
            added: None,
            pairs: None,
        });
    }
    let dir = cfg.run.dir.join("train").join(system.name());
    let path = dir.join("train.json");
    let train: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
        .with_context(|| format!("{}: not a train.json", path.display()))?;
    let trainable = train["trainable_parameters"].as_u64().unwrap_or(0) as usize;
    Ok(SystemInfo {
        name: system.name(),
        trainable_parameters: trainable,
        trainable_share: trainable as f64 / total_params.max(1) as f64,
        train_tokens_per_second: train["tokens_per_second"].as_f64(),
        final_validation_loss: final_validation_loss(&train),
        delta_sha256: Some(crate::report::sha256_path(&dir.join("delta.safetensors"))?),
        // Absent from a train.json written before settings were recorded.
        settings: serde_json::from_value(train["settings"].clone()).ok(),
        added: serde_json::from_value(train["added"].clone()).ok(),
        pairs: train["pairs"].as_u64().map(|p| p as usize),
    })
}

/// The last validation loss of a `train.json`.
pub fn final_validation_loss(train: &serde_json::Value) -> Option<f64> {
    train["validation_loss"].as_array()?.last()?[1].as_f64()
}

/// BLEU as the report computes it for `direction`: sacreBLEU's `zh` tokenizer for Chinese
/// targets, 13a otherwise.
pub fn bleu_for(direction: Direction) -> landermt_eval::Bleu {
    let tokenize = if direction.tgt.code == "zh" { landermt_eval::Tokenize::Zh } else { landermt_eval::Tokenize::Mteval13a };
    landermt_eval::Bleu { tokenize, ..Default::default() }
}

/// The in-context examples of `direction`: none when `n` is 0 (without reading `train.dev`).
fn read_shots(cfg: &RunConfig, direction: Direction, n: usize) -> std::result::Result<Vec<landermt_data::Pair>, landermt_data::CorpusError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    read_parallel(&cfg.train.dev, direction)
}

/// What a hypothesis file was decoded from and how long it took, kept next to it as
/// `{file}.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct DecodedFile {
    key: String,
    seconds: f64,
    generated_tokens: usize,
}

impl DecodedFile {
    fn sidecar(hyp: &std::path::Path) -> std::path::PathBuf {
        let mut name = hyp.as_os_str().to_owned();
        name.push(".json");
        name.into()
    }

    /// The file's lines and record when both exist and were decoded from `key`.
    fn reuse(hyp: &std::path::Path, key: &str) -> Option<(Vec<String>, DecodedFile)> {
        let record: DecodedFile = serde_json::from_slice(&std::fs::read(Self::sidecar(hyp)).ok()?).ok()?;
        let text = std::fs::read_to_string(hyp).ok()?;
        (record.key == key).then(|| (text.lines().map(str::to_string).collect(), record))
    }

    /// Written after the hypotheses, so a record never describes a file not yet written.
    fn write(&self, hyp: &std::path::Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        landermt_model::atomic::write_atomic(&Self::sidecar(hyp), |w| w.write_all(&bytes))?;
        Ok(())
    }
}

/// One system's decoding of one (direction, test set).
struct Hypotheses {
    system: String,
    /// Index into the references.
    key: usize,
    lines: Vec<String>,
    seconds: f64,
    generated_tokens: usize,
    file: String,
}

/// Stage 5: decodes every test set in every evaluated direction with every system, scores it
/// as sacreBLEU would, measures the LM loss on held-out text, and writes
/// `eval/{system}/{set}.{direction}.hyp`, `report.json`, `report.md` and the transfer and
/// forgetting figures.
pub fn eval(cfg: &RunConfig) -> Result<()> {
    use landermt_eval::bootstrap::{bleu_samples, chrf_samples, estimate, paired_p_value, sample_indices};
    let e = &cfg.eval;
    let systems = cfg.systems();
    let directions = cfg.eval_directions();
    let opts = landermt_eval::decode::DecodeOptions { template: cfg.eval_template().clone(), max_new_tokens: e.max_new_tokens, batch_size: e.batch_size, stop_at_newline: true, beams: e.beams, length_penalty: e.length_penalty };
    // (direction, set) → sources and references; per system the hypotheses.
    let mut refs: Vec<(Direction, String, Vec<landermt_data::Pair>)> = Vec::new();
    for &direction in &directions {
        for set in e.test_sets.iter().filter(|s| s.covers(direction)) {
            let mut pairs = read_parallel(&set.data, direction).with_context(|| format!("test set `{}`, direction {direction}", set.name))?;
            pairs.truncate(set.n);
            refs.push((direction, set.name.clone(), pairs));
        }
    }
    let mut hyps: Vec<Hypotheses> = Vec::new();
    let (mut lm_rows, mut infos) = (Vec::new(), Vec::new());
    let model_sha256 = crate::report::sha256_path(&cfg.model.resolve(true)?)?;
    for &system in &systems {
        let name = system.name();
        let model = trained_model(cfg, system)?;
        let info = system_info(cfg, system, burn::module::Module::num_params(&model.net))?;
        let weights = format!("{model_sha256} {}", info.delta_sha256.as_deref().unwrap_or("-"));
        infos.push(info);
        let decoder = landermt_eval::decode::Decoder::new(&model, &opts);
        for &lang in &e.lm_languages {
            let mut text = read_monolingual(&e.lm_data, lang)?;
            text.truncate(e.lm_n);
            let loss = lm_loss(&model, &text, e.batch_size)?;
            lm_rows.push(LmRow { system: name.clone(), language: lang.code.to_string(), sentences: text.len(), loss });
        }
        for (key, (direction, set, pairs)) in refs.iter().enumerate() {
            let sources: Vec<String> = pairs.iter().map(|p| p.src.clone()).collect();
            let n_shots = if system.icl { e.icl_shots } else { e.shots };
            let mut shots = match read_shots(cfg, *direction, n_shots) {
                Ok(pairs) => pairs,
                // An untrained direction (`extra_directions`) may have no dev pairs to show.
                Err(err) if system.icl => {
                    tracing::warn!(%direction, "icl not decoded: no in-context examples for this direction ({err})");
                    continue;
                }
                Err(err) => return Err(err).context("in-context examples (train.dev)"),
            };
            shots.truncate(n_shots);
            let file = cfg.run.dir.join("eval").join(&name).join(format!("{set}.{direction}.hyp"));
            // Everything the hypotheses depend on: an eval run again (a killed one, or one
            // whose metric settings changed) reuses a file decoded from the same inputs.
            let decode_key = crate::report::sha256(format!("{weights}\n{opts:?}\n{direction}\n{shots:?}\n{sources:?}").as_bytes());
            if let Some(done) = DecodedFile::reuse(&file, &decode_key) {
                tracing::info!(system = %name, %direction, set, "hypotheses current, reused");
                hyps.push(Hypotheses { system: name.clone(), key, lines: done.0, seconds: done.1.seconds, generated_tokens: done.1.generated_tokens, file: file.display().to_string() });
                continue;
            }
            let pb = bar(sources.len(), &format!("{name} {direction} {set}"));
            let start = std::time::Instant::now();
            let out = decoder.translate(*direction, &sources, &shots, &|n| pb.inc(n as u64))?;
            pb.finish();
            let seconds = start.elapsed().as_secs_f64();
            let text = out.lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            landermt_model::atomic::write_atomic(&file, |w| w.write_all(text.as_bytes()))?;
            DecodedFile { key: decode_key, seconds, generated_tokens: out.generated_tokens }.write(&file)?;
            tracing::info!(system = %name, %direction, set, seconds, tokens = out.generated_tokens, "decoded");
            hyps.push(Hypotheses { system: name.clone(), key, lines: out.lines, seconds, generated_tokens: out.generated_tokens, file: file.display().to_string() });
        }
    }

    let baseline = e.baseline.name().to_string();
    let (mut rows, mut comparisons) = (Vec::new(), Vec::new());
    for (key, (direction, set, pairs)) in refs.iter().enumerate() {
        let reference: Vec<String> = pairs.iter().map(|p| p.tgt.clone()).collect();
        let bleu = bleu_for(*direction);
        let chrf = landermt_eval::Chrf::CHRF;
        let idx = sample_indices(reference.len(), e.n_bootstrap, 12345);
        // Per system: corpus scores from the segment statistics, and the bootstrap samples.
        struct Scored<'a> {
            h: &'a Hypotheses,
            bleu: f64,
            chrf: f64,
            bleu_samples: Vec<f64>,
            chrf_samples: Vec<f64>,
        }
        let scored: Vec<Scored> = hyps
            .iter()
            .filter(|h| h.key == key)
            .map(|h| {
                let (bs, cs) = (bleu.all_stats(&h.lines, &reference), chrf.all_stats(&h.lines, &reference));
                Scored {
                    h,
                    bleu: bleu.score_stats(&landermt_eval::bleu::sum(&bs)).score,
                    chrf: chrf.score_stats(&landermt_eval::chrf::sum(&cs)),
                    bleu_samples: bleu_samples(&bs, &idx),
                    chrf_samples: chrf_samples(&cs, &idx),
                }
            })
            .collect();
        let base = scored.iter().find(|s| s.h.system == baseline).expect("the baseline is evaluated");
        // `eval.compare` against every other system, on the same resamplings.
        if let Some(focus) = e.compare.and_then(|m| scored.iter().find(|s| s.h.system == m.name())) {
            for other in scored.iter().filter(|s| s.h.system != focus.h.system) {
                comparisons.push(Comparison {
                    system: focus.h.system.clone(),
                    against: other.h.system.clone(),
                    direction: direction.to_string(),
                    test_set: set.clone(),
                    bleu_delta: focus.bleu - other.bleu,
                    bleu_p: paired_p_value(&other.bleu_samples, &focus.bleu_samples, other.bleu, focus.bleu, false),
                    chrf_delta: focus.chrf - other.chrf,
                    chrf_p: paired_p_value(&other.chrf_samples, &focus.chrf_samples, other.chrf, focus.chrf, true),
                });
            }
        }
        for s in &scored {
            let is_base = s.h.system == baseline;
            rows.push(Row {
                system: s.h.system.clone(),
                direction: direction.to_string(),
                test_set: set.clone(),
                sentences: reference.len(),
                bleu: s.bleu,
                bleu_signature: bleu.signature(),
                bleu_ci: estimate(&s.bleu_samples, true, false),
                chrf: s.chrf,
                chrf_signature: chrf.signature(),
                chrf_ci: estimate(&s.chrf_samples, false, true),
                bleu_p: (!is_base).then(|| paired_p_value(&base.bleu_samples, &s.bleu_samples, base.bleu, s.bleu, false)),
                chrf_p: (!is_base).then(|| paired_p_value(&base.chrf_samples, &s.chrf_samples, base.chrf, s.chrf, true)),
                sentences_per_second: reference.len() as f64 / s.h.seconds.max(1e-9),
                tokens_per_second: s.h.generated_tokens as f64 / s.h.seconds.max(1e-9),
                generated_tokens: s.h.generated_tokens,
                hypotheses: s.h.file.clone(),
            });
        }
    }
    let data_sha256 = refs
        .iter()
        .map(|(d, set, pairs)| (set.clone(), d.to_string(), crate::report::sha256(pairs.iter().map(|p| format!("{}\t{}\n", p.src, p.tgt)).collect::<String>().as_bytes())))
        .collect();
    let report = Report {
        version: crate::report::REPORT_VERSION,
        run: cfg.run.name.clone(),
        model: cfg.model.describe(),
        shots: e.shots,
        icl_shots: e.icl_shots,
        decoding: crate::report::Decoding { beams: e.beams, length_penalty: e.length_penalty, max_new_tokens: e.max_new_tokens, stop: "EOS or newline".into(), template: cfg.eval_template().to_string() },
        baseline,
        metrics: "BLEU and chrF computed by landermt following sacreBLEU 2.6.0's definitions; signatures as sacreBLEU prints them".into(),
        n_bootstrap: e.n_bootstrap,
        trained_directions: cfg.run.directions.iter().map(|d| d.to_string()).collect(),
        evaluated_directions: directions.iter().map(|d| d.to_string()).collect(),
        transfer: e.transfer.map(|m| m.name().to_string()),
        systems: infos,
        rows,
        comparisons,
        lm_loss: lm_rows,
        inputs: crate::report::Inputs {
            model_sha256,
            eval_config_sha256: crate::report::sha256(&serde_json::to_vec(e)?),
            data_sha256,
            gemm: Some(landermt_model::blas::current()),
        },
    };
    write_json(&cfg.run.dir.join("report.json"), &report)?;
    let md = report.markdown();
    let md_path = cfg.run.dir.join("report.md");
    landermt_model::atomic::write_atomic(&md_path, |w| w.write_all(md.as_bytes()))?;
    figures(cfg);
    println!("eval: {} → {}\n\n{md}", cfg.run.dir.join("report.json").display(), md_path.display());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// configs/quick.toml with its project-relative paths made absolute and a scratch run dir.
    pub(crate) fn quick(run_dir: &std::path::Path) -> RunConfig {
        fixture_config("configs/quick.toml", run_dir)
    }

    /// A config of the project (`path` from its root) with its paths made absolute and a
    /// scratch run dir.
    fn fixture_config(path: &str, run_dir: &std::path::Path) -> RunConfig {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cfg = RunConfig::load(&root.join(path)).unwrap();
        cfg.model.path = cfg.model.path.map(|p| root.join(p));
        if let landermt_data::ParallelSource::Flores { dir, .. } = &mut cfg.probe.data {
            *dir = root.join(&*dir);
        }
        for set in &mut cfg.eval.test_sets {
            if let landermt_data::ParallelSource::Flores { dir, .. } | landermt_data::ParallelSource::Opus { dir } = &mut set.data {
                *dir = root.join(&*dir);
            }
        }
        for source in [&mut cfg.train.data, &mut cfg.train.dev] {
            if let landermt_data::ParallelSource::Tsv { path, .. } = source {
                *path = root.join(&*path);
            }
        }
        for source in [&mut cfg.score.data, &mut cfg.route.check, &mut cfg.eval.lm_data] {
            if let landermt_data::MonoSource::Flores { dir, .. } = source {
                *dir = root.join(&*dir);
            }
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

    #[test]
    fn score_writes_neurons_for_the_selected_layers_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick(dir.path());
        let err = format!("{:#}", score(&cfg).unwrap_err());
        assert!(err.contains("layers.json") && err.contains("cargo xtask probe"), "{err}");
        probe(&cfg).unwrap();
        score(&cfg).unwrap();
        let neurons: landermt_score::Neurons = serde_json::from_slice(&std::fs::read(dir.path().join("neurons.json")).unwrap()).unwrap();
        assert_eq!(neurons.selected, vec![2, 3]);
        assert_eq!(neurons.languages.iter().map(|l| l.code).collect::<Vec<_>>(), ["en", "fr", "de"]);
        let ffn = &neurons.layers[0].modules["ffn_act"];
        // llama-tiny has 176 FFN units: ⌊0.9·176⌋ = 158, so 176 − 158 − 1 = 17 are specific.
        assert_eq!(ffn.counts.values().sum::<usize>(), 176);
        assert_eq!(176 - ffn.counts["general"], 17);
        let scores = landermt_score::Scores::read(&dir.path().join("neurons.safetensors")).unwrap();
        assert_eq!(scores.num_layers(), 4);

        // A second run reuses every language's saved scores and writes the same artifacts.
        let before = std::fs::read(dir.path().join("neurons.safetensors")).unwrap();
        std::fs::remove_file(dir.path().join("neurons.safetensors")).unwrap();
        score(&cfg).unwrap();
        assert!(std::fs::read(dir.path().join("neurons.safetensors")).unwrap() == before, "the resumed run wrote different scores");

        // Figures 4–7 and the counts, each as CSV and SVG.
        for stem in ["activation", "delta", "awareness-general", "awareness-specific", "specific-counts"] {
            let csv = std::fs::read_to_string(dir.path().join(format!("figures/{stem}.csv"))).unwrap();
            assert!(csv.lines().count() > 4, "{stem}.csv: {csv}");
            assert!(dir.path().join(format!("figures/{stem}.svg")).exists());
        }
    }

    #[test]
    fn route_writes_route_json_and_measures_the_routed_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = quick(dir.path());
        let err = format!("{:#}", route(&cfg).unwrap_err());
        assert!(err.contains("neurons.json") && err.contains("cargo xtask score"), "{err}");
        probe(&cfg).unwrap();
        score(&cfg).unwrap();
        for (car, moves) in [(landermt_model::nn::CarMode::Off, false), (landermt_model::nn::CarMode::Taylor, true)] {
            cfg.route.car = car;
            route(&cfg).unwrap();
            let r: landermt_route::Route = serde_json::from_slice(&std::fs::read(dir.path().join("route.json")).unwrap()).unwrap();
            assert_eq!(r.layers.iter().map(|l| l.layer).collect::<Vec<_>>(), [2, 3]);
            assert_eq!(r.layers[0].counts.iter().sum::<usize>(), 176);
            let c = r.check.unwrap();
            assert_eq!(c.sentences, 12, "lines 201–206 of en and fr");
            assert_eq!(c.max_abs_logit_diff > 0.0, moves, "{car:?}: {c:?}");
        }
    }

    #[test]
    fn train_runs_landermt_and_full_on_the_quick_config_and_resumes_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick(dir.path());
        probe(&cfg).unwrap();
        score(&cfg).unwrap();
        route(&cfg).unwrap();
        for method in [landermt_train::Method::Landermt, landermt_train::Method::Full, landermt_train::Method::Lora, landermt_train::Method::AdapterLora] {
            train(&cfg, System::all(method)).unwrap();
            let name = method.name();
            let out = dir.path().join("train").join(&name);
            let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("train.json")).unwrap()).unwrap();
            let losses: Vec<f64> = serde_json::from_value(summary["train_loss"].clone()).unwrap();
            assert!(losses.len() >= 2 && losses.last() < losses.first(), "{name}: {losses:?}");
            assert!(out.join("delta.safetensors").exists() && out.join("loss.svg").exists());
        }
        let share = |m: &str| -> f64 {
            let s: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("train").join(m).join("train.json")).unwrap()).unwrap();
            s["trainable_share"].as_f64().unwrap()
        };
        assert!(share("landermt") < 0.5 && share("full") == 1.0, "{} {}", share("landermt"), share("full"));
        // Started again, the finished run is found in its checkpoint and not trained twice.
        train(&cfg, System::all(landermt_train::Method::Landermt)).unwrap();
        assert!(share("lora") < share("landermt") && share("adapter-lora") > share("lora"));
    }

    #[test]
    fn export_writes_a_folder_that_loads_with_the_trained_logits() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = quick(dir.path());
        cfg.route.car = landermt_model::nn::CarMode::Off;
        probe(&cfg).unwrap();
        score(&cfg).unwrap();
        route(&cfg).unwrap();
        train(&cfg, System::all(cfg.train.method)).unwrap();
        let out = dir.path().join("export");
        export(&cfg, System::all(cfg.train.method), &out).unwrap();

        // The routed-and-trained model (CAR off), rebuilt here, against the exported folder.
        let method = landermt_train::Method::Landermt;
        let (model, units, _, selected) = prepare(&cfg, method).unwrap();
        let trainee = landermt_train::Trainee::with_added(model.net.clone(), method, units.as_ref(), &selected, &cfg.train.added(), cfg.train.seed);
        let delta = dir.path().join("train/landermt/delta.safetensors");
        let (trainee, _) = landermt_train::trainer::load_trained(&delta, trainee).unwrap();
        let exported = LanguageModel::load(&out, &landermt_model::Backend::Flex.device().unwrap()).unwrap();
        let ids = exported.encode("Le chat dort.").unwrap();
        let logits = |net: &landermt_model::Transformer| -> Vec<f32> {
            let batch = landermt_model::Batch::single(&ids);
            net.logits(net.forward(&batch, None, &mut landermt_model::Taps::none())).inner().into_data().try_into_vec().unwrap()
        };
        let (a, b) = (logits(&trainee.network()), logits(&exported.net));
        let base = logits(&model.net);
        assert!(a != base, "training changed nothing");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        // Same weights; only the matmul layouts differ (transposed on write and on load).
        assert!(worst < 1e-5, "the exported model's logits differ from the trained model's by up to {worst}");

        // Routed models and adapters cannot be written as plain checkpoints.
        cfg.route.car = landermt_model::nn::CarMode::Taylor;
        route(&cfg).unwrap();
        let err = format!("{:#}", export(&cfg, System::all(cfg.train.method), &dir.path().join("x")).unwrap_err());
        assert!(err.contains("CAR routing"), "{err}");
    }

    /// Our trainer and transformers + PEFT (bench/train_reference.py) on one protocol: the same
    /// examples, batch order, loss, AdamW and schedule give the same step and dev losses.
    #[test]
    fn training_matches_pytorch_and_peft_step_by_step() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/train-torch");
        let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("reference.json")).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = fixture_config("tests/fixtures/train-torch/tiny.toml", dir.path());
        probe(&cfg).unwrap();
        for method in [landermt_train::Method::Lora, landermt_train::Method::Full] {
            train(&cfg, System::all(method)).unwrap();
            let ours: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("train").join(method.name()).join("train.json")).unwrap()).unwrap();
            let theirs = &reference[method.name()];
            for key in ["trainable_parameters", "steps", "tokens"] {
                assert_eq!(ours[key], theirs[key], "{} {key}", method.name());
            }
            let close = |a: f64, b: f64, what: String| assert!((a - b).abs() <= 1e-5 * b.abs(), "{what}: ours {a}, PyTorch {b}");
            for (k, (a, b)) in ours["train_loss"].as_array().unwrap().iter().zip(theirs["train_loss"].as_array().unwrap()).enumerate() {
                close(a.as_f64().unwrap(), b.as_f64().unwrap(), format!("{} step {}", method.name(), k + 1));
            }
            let (dev, their_dev) = (ours["validation_loss"].as_array().unwrap(), theirs["validation_loss"].as_array().unwrap());
            assert_eq!(dev.len(), their_dev.len());
            for (a, b) in dev.iter().zip(their_dev) {
                assert_eq!(a[0], b[0]);
                close(a[1].as_f64().unwrap(), b[1].as_f64().unwrap(), format!("{} dev loss at step {}", method.name(), a[0]));
            }
        }
    }

    #[test]
    fn eval_writes_hypotheses_a_report_and_the_transfer_and_forgetting_figures() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick(dir.path());
        assert_eq!(cfg.eval.extra_directions.len(), 1, "quick.toml evaluates one untrained direction");
        assert_eq!(cfg.eval.transfer, Some(landermt_train::Method::Landermt));
        probe(&cfg).unwrap();
        score(&cfg).unwrap();
        route(&cfg).unwrap();
        let systems = cfg.systems();
        assert_eq!(systems.iter().map(|s| s.name()).collect::<Vec<_>>(), ["none", "landermt", "landermt@en-fr", "landermt@fr-en"]);
        for &s in &systems[1..] {
            train(&cfg, s).unwrap();
        }
        // A transfer system trains on its one direction: half the examples of the full run.
        let tokens = |s: &str| -> u64 {
            let t: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("train").join(s).join("train.json")).unwrap()).unwrap();
            t["tokens"].as_u64().unwrap()
        };
        assert!(tokens("landermt@fr-en") < tokens("landermt") && tokens("landermt@en-fr") < tokens("landermt"));
        eval(&cfg).unwrap();
        let report = Report::read(&dir.path().join("report.json")).unwrap();
        // 4 systems × 3 directions (en-fr, fr-en and the untrained en-de) × 2 test sets.
        assert_eq!(report.rows.len(), 24);
        assert_eq!(report.evaluated_directions, ["en-fr", "fr-en", "en-de"]);
        for r in &report.rows {
            assert!(r.bleu_signature.starts_with("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp"));
            assert_eq!(r.bleu_p.is_none(), r.system == "none");
            let hyp = std::fs::read_to_string(&r.hypotheses).unwrap();
            assert_eq!(hyp.lines().count(), r.sentences);
            assert!(r.generated_tokens >= r.sentences && r.tokens_per_second > 0.0, "{r:?}");
        }
        // The report's systems carry their trainable counts from train.json.
        let landermt = report.systems.iter().find(|s| s.name == "landermt").unwrap();
        assert!(landermt.trainable_parameters > 0 && landermt.trainable_share < 0.5 && landermt.delta_sha256.is_some());
        assert_eq!(report.inputs.data_sha256.len(), 6);
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("| landermt | fr-en |") && md.contains("| en-fr | ") && md.contains("Transfer (flores, BLEU)"), "{md}");
        // Forgetting: LM loss on German, which the run does not train, per system.
        assert_eq!(report.lm_loss.len(), 4);
        assert!(report.lm_loss.iter().all(|r| r.language == "de" && r.loss > 0.0));
        assert_ne!(report.lm_loss[0].loss, report.lm_loss[1].loss, "training left the LM loss exactly unchanged");
        // The figures: a transfer matrix per test set whose cells are the report's BLEU.
        let csv = std::fs::read_to_string(dir.path().join("figures/transfer-flores.csv")).unwrap();
        let cell = format!("en-fr,en-de,{}", report.bleu("landermt@en-fr", "en-de", "flores").unwrap());
        assert!(csv.lines().any(|l| l == cell), "{cell} not in\n{csv}");
        assert_eq!(csv.lines().count(), 1 + 4 * 3, "header + (none, en-fr, fr-en, all) × 3 directions");
        for f in ["transfer-flores.svg", "transfer-opus100.svg", "forgetting-lm.svg", "forgetting-bleu.svg"] {
            assert!(dir.path().join("figures").join(f).exists(), "{f}");
        }
        // landermt against each other system: 3 others × 6 (direction, set), on shared resamplings.
        assert_eq!(report.comparisons.len(), 18);
        let c = report.comparisons.iter().find(|c| c.against == "none" && c.direction == "fr-en" && c.test_set == "flores").unwrap();
        let row = report.rows.iter().find(|r| r.system == "landermt" && r.direction == "fr-en" && r.test_set == "flores").unwrap();
        assert_eq!((c.bleu_delta + report.bleu("none", "fr-en", "flores").unwrap(), c.bleu_p), (row.bleu, row.bleu_p.unwrap()));
        // Run again with another metric setting: the hypotheses are reused, not decoded again.
        let before: Vec<_> = report.rows.iter().map(|r| std::fs::metadata(&r.hypotheses).unwrap().modified().unwrap()).collect();
        let mut cfg = cfg;
        cfg.eval.n_bootstrap = 50;
        eval(&cfg).unwrap();
        let again = Report::read(&dir.path().join("report.json")).unwrap();
        let after: Vec<_> = again.rows.iter().map(|r| std::fs::metadata(&r.hypotheses).unwrap().modified().unwrap()).collect();
        assert_eq!(before, after, "hypothesis files were rewritten");
        assert_eq!(report.rows.iter().map(|r| r.sentences_per_second).collect::<Vec<_>>(), again.rows.iter().map(|r| r.sentences_per_second).collect::<Vec<_>>());
        let bleu = std::fs::read_to_string(dir.path().join("figures/forgetting-bleu.csv")).unwrap();
        assert_eq!(bleu.lines().count(), 1 + 2 * 2, "header + (en-de flores, en-de opus100) × (none, landermt):\n{bleu}");
        // The effective training settings and the decoding template are reported.
        assert_eq!(landermt.settings.as_ref().map(|s| s.lr), Some(cfg.train_for(landermt_train::Method::Landermt).lr));
        assert_eq!(report.decoding.template, landermt_data::prompt::DEFAULT_TEMPLATE);
        assert!(md.contains("Training settings of each system") && md.contains("| landermt | 4 | 1e-2 |"), "{md}");

        // In-context learning adds a system: the untuned model after one dev example per sentence.
        cfg.eval.icl_shots = 1;
        eval(&cfg).unwrap();
        let icl = Report::read(&dir.path().join("report.json")).unwrap();
        // en-de has no dev pairs to show, so icl is decoded on en-fr and fr-en only.
        assert_eq!(icl.rows.len(), 28);
        let prompt = |r: &Report, s: &str| r.rows.iter().find(|r| r.system == s && r.direction == "en-fr" && r.test_set == "flores").unwrap().hypotheses.clone();
        assert!(prompt(&icl, "icl").ends_with("eval/icl/flores.en-fr.hyp"));
        let record = |hyp: &str| serde_json::from_slice::<serde_json::Value>(&std::fs::read(format!("{hyp}.json")).unwrap()).unwrap()["key"].clone();
        assert_ne!(record(&prompt(&icl, "icl")), record(&prompt(&icl, "none")), "icl was decoded from the same inputs as none");
        assert_eq!(before, icl.rows.iter().filter(|r| r.system != "icl").map(|r| std::fs::metadata(&r.hypotheses).unwrap().modified().unwrap()).collect::<Vec<_>>());
    }
}
