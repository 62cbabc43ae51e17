use super::train::prepare;
use super::*;
use crate::report::Report;

/// configs/quick.toml with its project-relative paths made absolute and a scratch run dir.
pub(crate) fn quick(run_dir: &std::path::Path) -> RunConfig {
    fixture_config("configs/quick.toml", run_dir)
}

/// A config of the project (`path` from its root) with its paths made absolute and a
/// scratch run dir.
fn fixture_config(path: &str, run_dir: &std::path::Path) -> RunConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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

/// `net`'s logits of one sequence, flattened.
pub(crate) fn logits_of(net: &landermt_model::Transformer, ids: &[u32]) -> Vec<f32> {
    let batch = landermt_model::Batch::single(ids);
    net.logits(net.forward(&batch, None, &mut landermt_model::Taps::none())).inner().into_data().try_into_vec().unwrap()
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
fn probe_layers_given_by_hand_replace_the_selection_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    assert!(!serde_json::to_string(&cfg.probe).unwrap().contains("layers"), "runs made before probe.layers keep their probe key");
    cfg.probe.layers = Some(vec![3, 0, 3]);
    probe(&cfg).unwrap();
    let layers: landermt_probe::Layers = serde_json::from_slice(&std::fs::read(dir.path().join("layers.json")).unwrap()).unwrap();
    assert_eq!((layers.selected, layers.rule, layers.k), (vec![0, 3], landermt_probe::Rule::Given, 2));
    assert_eq!(layers.directions.len(), 2, "the curves are still measured");
    cfg.probe.layers = Some(vec![1, 4]);
    let err = format!("{:#}", probe(&cfg).unwrap_err());
    assert!(err.contains("probe.layers = [1, 4]") && err.contains("block 4 given, but the model's blocks are 0–3"), "{err}");
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
    // The identity start: Taylor CAR, and the held-out check shows no change before training.
    assert!(!serde_json::to_string(&cfg.route).unwrap().contains("start"), "runs before route.start keep their route key");
    cfg.route.start = landermt_model::nn::Start::Identity;
    route(&cfg).unwrap();
    let r: landermt_route::Route = serde_json::from_slice(&std::fs::read(dir.path().join("route.json")).unwrap()).unwrap();
    let c = r.check.unwrap();
    assert_eq!(r.start, landermt_model::nn::Start::Identity);
    assert!(c.max_abs_logit_diff < 1e-5 && (c.base_loss - c.routed_loss).abs() < 1e-6, "{c:?}");
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
        let out = dir.path().join("train").join(name);
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
    export(&cfg, System::all(cfg.train.method), None, Format::Hf, &out).unwrap();

    // The routed-and-trained model (CAR off), rebuilt here, against the exported folder.
    let method = landermt_train::Method::Landermt;
    let prepared = prepare(&cfg, method).unwrap();
    let trainee = prepared.trainee(&cfg, System::all(method));
    let model = prepared.model;
    let delta = dir.path().join("train/landermt/delta.safetensors");
    let (trainee, _) = landermt_train::trainer::load_trained(&delta, trainee).unwrap();
    let exported = LanguageModel::load(&out, &landermt_model::Backend::Flex.device().unwrap()).unwrap();
    let ids = exported.encode("Le chat dort.").unwrap();
    let logits = |net: &landermt_model::Transformer| logits_of(net, &ids);
    let (a, b) = (logits(&trainee.network()), logits(&exported.net));
    let base = logits(&model.net);
    assert!(a != base, "training changed nothing");
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    // Same weights; only the matmul layouts differ (transposed on write and on load).
    assert!(worst < 1e-5, "the exported model's logits differ from the trained model's by up to {worst}");

    // Token-dependent CAR cannot be a plain checkpoint: it goes out as remote code, under its
    // own model type so that a loader without that code refuses it.
    cfg.route.car = landermt_model::nn::CarMode::Taylor;
    route(&cfg).unwrap();
    std::fs::remove_dir_all(dir.path().join("train/landermt")).unwrap();
    train(&cfg, System::all(cfg.train.method)).unwrap();
    let routed = dir.path().join("routed");
    export(&cfg, System::all(cfg.train.method), None, Format::Hf, &routed).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(routed.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["model_type"].as_str(), config["landermt"]["layers"]["2"]["car"].as_str()), (Some("landermt"), Some("taylor")), "{config}");
    assert!(routed.join("modeling_landermt.py").exists());
    // LoRA's own format is for LoRA alone.
    let err = format!("{:#}", export(&cfg, System::all(cfg.train.method), None, Format::Peft, &dir.path().join("x")).unwrap_err());
    assert!(err.contains("--format hf"), "{err}");
}

/// Static CAR folds exactly into the gate and up columns: the exported plain checkpoint gives
/// the routed, trained model's logits, with the paper's start and with the identity start.
#[test]
fn a_static_car_model_exports_as_a_plain_checkpoint_with_its_routed_logits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    cfg.route.car = landermt_model::nn::CarMode::Static;
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    for start in [landermt_model::nn::Start::Paper, landermt_model::nn::Start::Identity] {
        cfg.route.start = start;
        route(&cfg).unwrap();
        let system = System::all(landermt_train::Method::Landermt);
        if start == landermt_model::nn::Start::Identity {
            // The start is part of the recorded setup: the paper-start checkpoint is refused.
            let err = format!("{:#}", train(&cfg, system).unwrap_err());
            assert!(err.contains("start") && err.contains("different setup"), "{err}");
            std::fs::remove_dir_all(dir.path().join("train/landermt")).unwrap();
        }
        train(&cfg, system).unwrap();
        let out = dir.path().join(format!("export-{start:?}"));
        export(&cfg, system, None, Format::Hf, &out).unwrap();
        let routed = super::train::trained_model(&cfg, system).unwrap();
        let exported = LanguageModel::load(&out, &landermt_model::Backend::Flex.device().unwrap()).unwrap();
        let ids = exported.encode("Le chat dort sur le canapé.").unwrap();
        let logits = |net: &landermt_model::Transformer| logits_of(net, &ids);
        let (a, b) = (logits(&routed.net), logits(&exported.net));
        let mut unrouted = routed.clone();
        unrouted.net.layers.iter_mut().for_each(|l| l.mlp.router = None);
        let worst = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(worst(&a, &b) < 1e-5, "{start:?}: the exported logits differ by {}", worst(&a, &b));
        if start == landermt_model::nn::Start::Paper {
            assert!(worst(&a, &logits(&unrouted.net)) > 1e-3, "the routing should matter");
        }
    }
}

/// Our trainer and transformers + PEFT (bench/train_reference.py) on one protocol: the same
/// examples, batch order, loss, AdamW and schedule give the same step and dev losses.
#[test]
fn training_matches_pytorch_and_peft_step_by_step() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train-torch");
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
    // The plan decodes each system right after its training; the decoding step is current
    // once its outputs are kept, and the eval stage reuses them.
    let names: Vec<String> = crate::plan::steps(&cfg).into_iter().map(|s| s.name).collect();
    for s in &systems {
        let at = names.iter().position(|n| *n == format!("train:{}", s.name())).unwrap();
        assert_eq!(names[at + 1], format!("decode:{}", s.name()), "{names:?}");
    }
    let step = crate::plan::decode_step(systems[1]);
    assert!(!crate::plan::is_current(&cfg, &step).unwrap());
    decode(&cfg, systems[1]).unwrap();
    assert!(crate::plan::is_current(&cfg, &step).unwrap() && !dir.path().join("eval/none").exists());
    let kept = dir.path().join("eval/landermt/flores.en-fr.hyp");
    let decoded_at = std::fs::metadata(&kept).unwrap().modified().unwrap();
    eval(&cfg).unwrap();
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), decoded_at, "the eval stage decoded landermt again");
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
        // Off-target and runaway counts of every freshly decoded file.
        let off = r.off_target.expect("off-target identified");
        assert!(off.lines == r.sentences && off.off + off.undetermined <= off.lines, "{off:?}");
        assert!(r.at_limit.is_some_and(|n| n <= r.sentences), "{r:?}");
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
    // Each trained system's change against `none` on the same sentences, with its interval.
    for r in &report.lm_loss {
        match (r.system.as_str(), r.change) {
            ("none", c) => assert_eq!(c, None),
            (_, Some(c)) => assert!(c.low <= c.delta && c.delta <= c.high && c.delta != 0.0, "{r:?}"),
            (_, None) => panic!("no change against none: {r:?}"),
        }
    }
    assert!(md.contains("off-target") && md.contains("95 % interval"), "{md}");
    // An LM record from before per-sentence losses were kept: the untrained system's is
    // measured again, a trained system's stands until that system is trained again.
    for s in ["none", "landermt"] {
        let file = dir.path().join("eval").join(s).join("lm.de.json");
        let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        record.as_object_mut().unwrap().remove("losses");
        std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();
    }
    assert!(!is_decoded(&cfg, systems[0]).unwrap() && is_decoded(&cfg, systems[1]).unwrap());
    decode(&cfg, systems[0]).unwrap();
    assert!(is_decoded(&cfg, systems[0]).unwrap());
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

#[test]
fn hypotheses_are_reused_only_with_their_key_and_one_line_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let hyp = dir.path().join("flores.en-fr.hyp");
    std::fs::write(&hyp, "un\ndeux\n").unwrap();
    let record = DecodedFile { key: "k".into(), seconds: 1.0, generated_tokens: 5, at_limit: None };
    std::fs::write(dir.path().join("flores.en-fr.hyp.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    let (lines, done) = DecodedFile::reuse(&hyp, "k", 2).expect("current");
    assert_eq!((lines, done.generated_tokens), (vec!["un".to_string(), "deux".to_string()], 5));
    assert!(DecodedFile::reuse(&hyp, "other", 2).is_none(), "decoded from other inputs");
    assert!(DecodedFile::reuse(&hyp, "k", 3).is_none(), "a file with a line missing");
    // A file cut at the first newline stands for today's rule only where no line is empty.
    assert!(DecodedFile::reuse_first_newline_cut(&hyp, "k", 2).is_some());
    std::fs::write(&hyp, "un\n\n").unwrap();
    assert!(DecodedFile::reuse(&hyp, "k", 2).is_some());
    assert!(DecodedFile::reuse_first_newline_cut(&hyp, "k", 2).is_none(), "an empty line may have been a leading newline");
}

/// quick.toml over two pairs (en↔fr, en↔de) in joint mode: one model for the four directions.
pub(crate) fn quick_joint(run_dir: &std::path::Path) -> RunConfig {
    let mut cfg = quick(run_dir);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    cfg.run.directions = ["en-fr", "fr-en", "en-de", "de-en"].iter().map(|d| d.parse().unwrap()).collect();
    cfg.run.mode = crate::config::RunMode::Joint;
    cfg.train.data = landermt_data::ParallelSource::Corpus { dir: root.join("data/corpus"), split: "train".into() };
    cfg.train.dev = landermt_data::ParallelSource::Corpus { dir: root.join("data/corpus"), split: "dev".into() };
    cfg.eval.extra_directions.clear();
    cfg.eval.transfer = None;
    cfg.eval.methods = vec![landermt_train::Method::None, landermt_train::Method::Landermt, landermt_train::Method::Lora];
    cfg.eval.test_sets.retain(|t| t.name == "flores");
    cfg
}

#[test]
fn a_joint_run_over_two_pairs_trains_one_delta_per_system_and_decodes_every_direction_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_joint(dir.path());
    assert!(cfg.is_joint() && !cfg.is_multi_pair());
    cfg.eval.seeds = vec![cfg.train.seed, 2];
    cfg.eval.seeded = vec![landermt_train::Method::Landermt, landermt_train::Method::Lora];
    cfg.eval.methods.push(landermt_train::Method::Lape);
    cfg.score.lape.top_rate = 0.05;
    let names: Vec<String> = cfg.systems().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["none", "landermt", "lora", "lape", "landermt.seed2", "lora.seed2"]);
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    route(&cfg).unwrap();
    let routes: landermt_route::Routes = serde_json::from_slice(&std::fs::read(dir.path().join("routes.json")).unwrap()).unwrap();
    let layers = |r: &landermt_route::Route| r.layers.iter().map(|l| l.layer).collect::<Vec<_>>();
    assert_eq!(routes.routes.iter().map(|r| r.pair.map(|l| l.code).join("-")).collect::<Vec<_>>(), ["en-fr", "en-de"]);
    assert_eq!(layers(&routes.routes[0]), layers(&routes.routes[1]), "one layer set for every pair");
    assert_ne!(routes.routes[0].layers[0].specific, routes.routes[1].layers[0].specific, "each pair routes its own specific units");
    for system in &cfg.systems()[1..] {
        train(&cfg, *system).unwrap();
    }
    let delta = |s: &str| std::fs::read(dir.path().join("train").join(s).join("delta.safetensors")).unwrap();
    assert_ne!(delta("landermt"), delta("landermt.seed2"), "another seed, another data order");
    assert!(!dir.path().join("pairs").exists(), "no per-pair runs");
    let trained = |m: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(dir.path().join("train").join(m).join("train.json")).unwrap()).unwrap() };
    // Up to 4 pairs per direction that fit max_len, batches of 2, one direction per batch: the
    // same stream for every system, at least one batch of each direction.
    let steps = trained("landermt")["steps"].as_u64().unwrap();
    assert!(steps >= 4 && trained("lora")["steps"] == steps, "{steps}");
    eval(&cfg).unwrap();
    let report = Report::read(&dir.path().join("report.json")).unwrap();
    for system in ["none", "landermt", "lora", "lape"] {
        let mut ds: Vec<&str> = report.rows.iter().filter(|r| r.system == system).map(|r| r.direction.as_str()).collect();
        ds.sort();
        assert_eq!(ds, ["de-en", "en-de", "en-fr", "fr-en"], "{system}");
    }
    // Two seeds per method: a mean and spread per direction, and the claim lora vs landermt.
    assert_eq!(report.seeds.len(), 2 * 4);
    assert!(report.seeds.iter().all(|s| s.seeds == [1, 2] && s.bleu.len() == 2));
    assert_eq!(report.seed_claims.len(), 4);
    assert!(report.seed_claims.iter().all(|c| c.system == "landermt" && c.against == "lora" && c.deltas.len() == 2));
    assert!(std::fs::read_to_string(dir.path().join("report.md")).unwrap().contains("Claims between seeded methods"));
    // The README's joint table (claims block `paper-joint`): every system and both seeded methods.
    let columns: Vec<String> = ["fr-en", "de-en", "en-fr", "en-de"].map(String::from).into();
    let table = crate::claims::joint_mode_bleu(&report, &columns, "flores");
    for needle in ["| none |", "| landermt |", "| lora |", "| lape |", "| landermt (2 seeds, mean ± sd) |", "| lora (2 seeds, mean ± sd) |", "fr→en", "en→de"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    assert!(!table.contains("seed2 |"), "seeded systems appear as their method's mean: {table}");
    // The trained model loads with the first pair's routing; eval swaps in each direction's.
    let hyp = |d: &str| std::fs::read_to_string(dir.path().join("eval/landermt").join(format!("flores.{d}.hyp"))).unwrap();
    let model = super::train::trained_model(&cfg, System::all(landermt_train::Method::Landermt)).unwrap();
    let router = |layer: usize| model.net.layers[layer].mlp.router.as_ref().unwrap().masks.specific.clone().into_data().try_into_vec::<f32>().unwrap();
    let fr_specific: Vec<usize> = router(routes.routes[0].layers[0].layer).iter().enumerate().filter(|(_, x)| **x > 0.0).map(|(i, _)| i).collect();
    assert_eq!(fr_specific, routes.routes[0].layers[0].specific, "the trained model is loaded with the first pair's routing");
    assert!(!hyp("en-de").is_empty());
}

#[test]
fn the_random_control_keeps_taylors_counts_and_route_and_train_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    let read = || -> landermt_score::Neurons { serde_json::from_slice(&std::fs::read(dir.path().join("neurons.json")).unwrap()).unwrap() };
    let taylor = read();
    assert!(!serde_json::to_string(&cfg.score).unwrap().contains("method"), "runs before score.method keep their score key");
    cfg.score.method = landermt_score::ScoreMethod::Random;
    score(&cfg).unwrap();
    let random = read();
    assert_eq!(random.random_seed, Some(1));
    for (t, r) in taylor.layers.iter().zip(&random.layers) {
        for (name, split) in &t.modules {
            assert_eq!(r.modules[name].counts, split.counts, "layer {} {name}", t.layer);
        }
    }
    assert_ne!(taylor.layers[0].modules["ffn_act"].general, random.layers[0].modules["ffn_act"].general);
    route(&cfg).unwrap();
    train(&cfg, System::all(landermt_train::Method::Landermt)).unwrap();
    assert!(dir.path().join("train/landermt/delta.safetensors").exists());
}

#[test]
fn lape_units_replace_the_ffn_split_and_route_and_train_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    cfg.score.method = landermt_score::ScoreMethod::Lape;
    cfg.score.lape.top_rate = 0.05;
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    let neurons: landermt_score::Neurons = serde_json::from_slice(&std::fs::read(dir.path().join("neurons.json")).unwrap()).unwrap();
    let lape: landermt_score::lape::Lape = serde_json::from_slice(&std::fs::read(dir.path().join("lape.json")).unwrap()).unwrap();
    assert_eq!(neurons.lape, Some(cfg.score.lape));
    // 4 blocks × 176 units × 0.05 = 35.2 → 35 units ranked and kept.
    assert_eq!(lape.kept, 35);
    for l in &neurons.layers {
        let ffn = &l.modules["ffn_act"];
        assert_eq!(ffn.specific, lape.units[l.layer], "layer {}", l.layer);
        assert!(ffn.general.iter().all(|u| !ffn.specific.values().flatten().any(|s| s == u)), "general and LAPE units overlap");
    }
    assert!(lape.units.iter().flat_map(|m| m.values()).any(|u| !u.is_empty()), "LAPE found no unit at all");
    route(&cfg).unwrap();
    train(&cfg, System::all(landermt_train::Method::Landermt)).unwrap();
}

/// `lape` trains LAPE's units of the pair's languages in every block and nothing else: every
/// other entry of the trained model is the base model's, bit for bit.
#[test]
fn lape_trains_its_units_in_every_block_and_leaves_every_other_entry_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    cfg.eval.methods.push(landermt_train::Method::Lape);
    cfg.score.lape.top_rate = 0.05;
    assert!(cfg.needs_lape());
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    let lape: landermt_score::lape::Lape = serde_json::from_slice(&std::fs::read(dir.path().join("lape.json")).unwrap()).unwrap();
    let system = System::all(landermt_train::Method::Lape);
    train(&cfg, system).unwrap();
    let trained = super::train::trained_model(&cfg, system).unwrap();
    let base = cfg.model.load(false).unwrap();
    let values = |t: burn::tensor::Tensor<2>| -> Vec<f32> { t.into_data().try_into_vec().unwrap() };
    let mut moved = 0;
    for (l, (a, b)) in trained.net.layers.iter().zip(&base.net.layers).enumerate() {
        let units: Vec<usize> = ["en", "fr"].iter().flat_map(|c| lape.units[l][*c].iter().copied()).collect();
        for (name, x, y) in [("q", &a.attn.q_proj, &b.attn.q_proj), ("o", &a.attn.o_proj, &b.attn.o_proj), ("up", &a.mlp.up_proj, &b.mlp.up_proj)] {
            // Burn's [in, out] layout: entry i is output unit i % out.
            let out = x.weight.dims()[1];
            let (x, y) = (values(x.weight.val()), values(y.weight.val()));
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                if name == "up" && units.contains(&(i % out)) {
                    moved += (p != q) as usize;
                } else {
                    assert_eq!(p.to_bits(), q.to_bits(), "layer {l} {name} entry {i} moved");
                }
            }
        }
    }
    assert!(moved > 0, "no LAPE unit was trained");
}
