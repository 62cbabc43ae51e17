//! Stage 2, `neurons.safetensors` and `neurons.json`: every FFN unit's language awareness.

use super::*;

/// Stage 2: `neurons.safetensors` and `neurons.json`. Each language's scores are saved under
/// `score/` as soon as they are done, so a killed run resumes at the next language.
pub fn score(cfg: &RunConfig) -> Result<()> {
    let sc = &cfg.score;
    let languages = cfg.score_languages();
    let model = landermt_score::frozen(cfg.model.load(true)?);
    // One pair: the probe's layers. Several: every layer, so that neurons.* does not change
    // with the pairs that ran (each pair's route takes its own layers from it).
    let selected = if cfg.is_multi_pair() {
        (0..model.config.num_layers).collect()
    } else {
        let layers = read_layers(cfg)?;
        if layers.num_layers != model.config.num_layers {
            bail!("layers.json was measured on a {}-layer model, but {} has {}; run the probe again", layers.num_layers, model.source.display(), model.config.num_layers);
        }
        layers.selected
    };
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
    let settings = Settings { model: cfg.model.describe(), languages: languages.clone(), data: sc.data.clone(), epsilon: sc.epsilon, num_layers: model.config.num_layers, selected };
    let (scores, mut neurons) = landermt_score::neurons(&settings, &per_language)?;
    match sc.method {
        landermt_score::ScoreMethod::Taylor | landermt_score::ScoreMethod::Lape => {}
        // The control: Taylor's counts, drawn units (the scores, and so CAR's Ḡ, stay Taylor's).
        landermt_score::ScoreMethod::Random => neurons = landermt_score::random::randomized(&neurons, sc.seed.unwrap_or(1)),
    }
    if cfg.needs_lape() {
        let lape = lape(cfg, &model, &languages)?;
        write_json(&cfg.run.dir.join("lape.json"), &lape)?;
        if sc.method == landermt_score::ScoreMethod::Lape {
            neurons = landermt_score::with_lape(&neurons, &lape);
        }
    }
    scores.write(&cfg.run.dir.join("neurons.safetensors"))?;
    let out = cfg.run.dir.join("neurons.json");
    write_json(&out, &neurons)?;
    let how = match (neurons.random_seed, neurons.lape) {
        (Some(s), _) => format!(" (random units, seed {s})"),
        (_, Some(_)) => " (LAPE's FFN units; lape.json)".to_string(),
        _ => String::new(),
    };
    println!("score: {} languages in {:.1}s{how} → {}", languages.len(), start.elapsed().as_secs_f64(), out.display());
    for l in &neurons.layers {
        let ffn = &l.modules["ffn_act"];
        let specific: Vec<String> = languages.iter().map(|lang| format!("{lang} {}", ffn.counts[lang.code])).collect();
        println!("  layer {:>2} ffn_act: {} general, specific {}", l.layer, ffn.counts["general"], specific.join(", "));
    }
    figures(cfg);
    Ok(())
}

/// LAPE over the score stage's sentences of every language (the same text Taylor reads).
fn lape(cfg: &RunConfig, model: &LanguageModel, languages: &[landermt_data::Language]) -> Result<landermt_score::lape::Lape> {
    let sc = &cfg.score;
    // The model's special prefix (BOS) is the same in every language: not counted.
    let skip = model.encode("")?.len();
    let mut activity = Vec::new();
    for lang in languages {
        let mut sentences = read_monolingual(&sc.data, *lang)?;
        sentences.truncate(sc.n);
        let ids = sentences.iter().map(|s| model.encode(s)).collect::<landermt_model::Result<Vec<_>>>()?;
        let pb = bar(ids.len(), &format!("LAPE {lang}"));
        activity.push(landermt_score::lape::activity(model, &ids, skip, &|n| pb.inc(n as u64)));
        pb.finish();
    }
    Ok(landermt_score::lape::select(languages, &activity, sc.lape))
}
