//! Exports checked by independent loaders (issue 44): transformers (with the exported remote
//! code where there is one) and PEFT, in the Python of `bash bench/hf-venv.sh`, compute the
//! logits and greedy tokens of our trained systems from what `export` wrote.

use std::path::{Path, PathBuf};

use landermt_model::nn::{CarMode, Start};
use landermt_train::Method;

use super::tests::{logits_of, quick};
use super::*;

/// The Python with transformers and PEFT: `$LANDERMT_HF_PYTHON`, or the venv that
/// `bench/hf-venv.sh` makes. Under CI (`LANDERMT_CI`) its absence is a failure.
fn hf_python() -> Option<PathBuf> {
    let path = match std::env::var_os("LANDERMT_HF_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => landermt_model::cache::cache_dir().join("hf-venv/bin/python"),
    };
    if path.exists() {
        return Some(path);
    }
    assert!(std::env::var_os("LANDERMT_CI").is_none(), "{} is missing under CI; `.ci/run` runs `bash bench/hf-venv.sh`", path.display());
    eprintln!("SKIPPED: no transformers/PEFT Python at {}; run `bash bench/hf-venv.sh`", path.display());
    None
}

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The largest absolute difference of two logit vectors.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// Runs `bench/hf_check.py` on `jobs` (written into `dir`) and returns its results, one per job.
fn hf_check(python: &Path, dir: &Path, jobs: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let (jobs_file, results) = (dir.join("jobs.json"), dir.join("results.json"));
    std::fs::write(&jobs_file, serde_json::to_vec(jobs).unwrap()).unwrap();
    let run = std::process::Command::new(python).arg(root().join("bench/hf_check.py")).arg(&jobs_file).arg(&results).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap()
}

/// One system's export and what we compute for it.
struct Case {
    name: String,
    job: serde_json::Value,
    ours: Vec<f32>,
    greedy: Vec<u32>,
}

const GREEDY: usize = 4;

/// Our greedy continuation, recomputing the whole sequence at each step as the script does.
fn greedy(net: &landermt_model::Transformer, ids: &[u32], vocab: usize) -> Vec<u32> {
    let mut seq = ids.to_vec();
    for _ in 0..GREEDY {
        let logits = logits_of(net, &seq);
        let last = &logits[logits.len() - vocab..];
        let next = (0..vocab).max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a))).unwrap();
        seq.push(next as u32);
    }
    seq[ids.len()..].to_vec()
}

fn case(cfg: &RunConfig, system: System, name: String, job: serde_json::Value) -> Case {
    let model = trained_model(cfg, system).unwrap();
    let ids = model.encode("Translate this from English to French:\nEnglish: The cat sleeps.\nFrench:").unwrap();
    let vocab = model.config.vocab_size;
    let mut job = job;
    job["ids"] = serde_json::json!(ids);
    job["greedy"] = GREEDY.into();
    let ours = logits_of(&model.net, &ids);
    if job["kind"] == "hf" {
        // Our own loader reads every folder back, routed exports included. The bound is the
        // transformers check's: the same weights, but the trained model's come out of the
        // delta in another layout, and Gemma 3's Taylor-routed logits moved by 1.2e-5.
        let device = landermt_model::Backend::Flex.device().unwrap();
        let read = LanguageModel::load(job["model"].as_str().unwrap(), &device).unwrap();
        let worst = largest_difference(&logits_of(&read.net, &ids), &ours);
        assert!(worst < 5e-5, "{name}: read back by our loader, the logits differ by {worst}");
    }
    Case { name, job, greedy: greedy(&model.net, &ids, vocab), ours }
}

/// Trains and exports every method of the quick config on the fixture `model`, and every CAR
/// mode and start of `landermt`.
fn cases(model: &str, dir: &Path) -> Vec<Case> {
    let mut cfg = quick(dir);
    cfg.model.path = Some(root().join("tests/fixtures/hf-tiny").join(model));
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    route(&cfg).unwrap();
    let mut cases = Vec::new();
    let out = |name: &str| dir.join("export").join(name).display().to_string();
    for method in [Method::None, Method::Lora, Method::AdapterLora, Method::Full, Method::Layers, Method::Landermt] {
        let system = System::all(method);
        train(&cfg, system).unwrap();
        let name = method.name();
        export(&cfg, system, None, Format::Hf, Path::new(&out(name))).unwrap();
        cases.push(case(&cfg, system, format!("{model} {name}"), serde_json::json!({ "kind": "hf", "model": out(name) })));
        if method == Method::Lora {
            export(&cfg, system, None, Format::Peft, Path::new(&out("peft"))).unwrap();
            let base = cfg.model.path.as_ref().unwrap().display().to_string();
            cases.push(case(&cfg, system, format!("{model} lora (PEFT)"), serde_json::json!({ "kind": "peft", "model": base, "adapter": out("peft") })));
        }
    }
    for (car, start) in [(CarMode::Learned, Start::Paper), (CarMode::Taylor, Start::Identity), (CarMode::Static, Start::Paper), (CarMode::Off, Start::Paper)] {
        cfg.route.car = car;
        cfg.route.start = start;
        route(&cfg).unwrap();
        std::fs::remove_dir_all(dir.join("train/landermt")).unwrap();
        let system = System::all(Method::Landermt);
        train(&cfg, system).unwrap();
        let name = format!("landermt-{car:?}-{start:?}");
        export(&cfg, system, None, Format::Hf, Path::new(&out(&name))).unwrap();
        cases.push(case(&cfg, system, format!("{model} {name}"), serde_json::json!({ "kind": "hf", "model": out(&name) })));
    }
    cases
}

/// The largest |ours − transformers'| logit an exported system may show: the engine's own
/// transformers parity limit for these architectures (f32 sums in another order). Gemma 3's
/// untrained model alone differs by 2e-5 on an AMD EPYC and by 3.0e-5 on an Intel Xeon
/// (2026-12-07), where PEFT's unmerged W·x + B·A·x reached 5.25e-5; LLaMA and Qwen2 stay
/// under 1.4e-5.
const LIMIT: f32 = 1e-4;

#[test]
fn transformers_and_peft_compute_every_exported_system_as_we_do() {
    let Some(python) = hf_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for model in ["llama-tiny", "qwen2-tiny", "gemma3-tiny", "bloom-tiny"] {
        all.extend(cases(model, &dir.path().join(model)));
    }
    let results = hf_check(&python, dir.path(), &all.iter().map(|c| c.job.clone()).collect::<Vec<_>>());
    let mut failures = Vec::new();
    for (c, r) in all.iter().zip(&results) {
        let theirs: Vec<f32> = serde_json::from_value(r["logits"].clone()).unwrap();
        let greedy: Vec<u32> = serde_json::from_value(r["greedy"].clone()).unwrap();
        let worst = largest_difference(&c.ours, &theirs);
        eprintln!("{}: largest logit difference {worst:.2e}, greedy {:?} / {:?}", c.name, c.greedy, greedy);
        if theirs.len() != c.ours.len() || worst > LIMIT || greedy != c.greedy {
            failures.push(format!("{}: {} logits against our {}, largest difference {worst:.2e}; greedy {greedy:?} against our {:?}", c.name, theirs.len(), c.ours.len(), c.greedy));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The limit can tell a system from its base model: an export that dropped the trained
    // weights, the adapter or the routing would be caught by the logits, not only by greedy.
    for c in &all {
        let model = c.name.split(' ').next().unwrap();
        let base = all.iter().find(|b| b.name == format!("{model} none")).unwrap();
        let moved = largest_difference(&c.ours, &base.ours);
        assert!(std::ptr::eq(c, base) || moved > 10.0 * LIMIT, "{}: its logits are within {moved:.2e} of the untrained model's", c.name);
    }
}

/// Exports `system` of `cfg` as GGUF in type `ty` into `dir`, reads it back with our loader,
/// and checks the tokenizer round trip and, for f32, the trained system's logits and the
/// context length GGUF records (`context`: key and value). Returns the transformers job and
/// our logits of the file.
fn gguf_read_back(cfg: &RunConfig, system: System, ty: landermt_model::export::gguf::GgufType, dir: &Path, context: (&str, u64)) -> (serde_json::Value, (String, Vec<f32>)) {
    let text = "Translate this from English to French:\nEnglish: The cat sleeps.\nFrench:";
    let trained = trained_model(cfg, system).unwrap();
    let ids = trained.encode(text).unwrap();
    let file = format!("{}-{}-{ty:?}.gguf", cfg.model.describe().rsplit('/').next().unwrap(), system.method.name());
    export(cfg, system, None, Format::Gguf(ty), &dir.join(&file)).unwrap();
    let read = LanguageModel::load(dir.join(&file), &landermt_model::Backend::Flex.device().unwrap()).unwrap();
    assert_eq!(read.encode(text).unwrap(), ids, "{file}: our GGUF tokenizer reads the text differently");
    let logits = logits_of(&read.net, &ids);
    if ty == landermt_model::export::gguf::GgufType::F32 {
        let worst = largest_difference(&logits, &logits_of(&trained.net, &ids));
        assert!(worst < 1e-5, "{file}: {worst} from the trained system");
        // The source config's context length, not a made-up one.
        let g = landermt_model::gguf::GgufFile::open(dir.join(&file)).unwrap();
        assert_eq!(g.get(context.0).and_then(|v| v.as_u64()), Some(context.1), "{file}");
    }
    (serde_json::json!({ "kind": "gguf", "model": dir, "file": file, "ids": ids, "greedy": 0 }), (file, logits))
}

/// GGUF in every matrix type: our reader and transformers' (gguf-py's dequantisation) read the
/// same model from the file, the tokenizer round-trips, and an f32 file is the trained system.
/// Gemma 3 settings that GGUF readers would misread, and Qwen2's biases, are refused.
#[test]
fn gguf_exports_read_the_same_in_transformers_and_ours() {
    use landermt_model::export::gguf::GgufType;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick(dir.path());
    cfg.route.car = CarMode::Static;
    // BLOOM: its fused QKV in llama.cpp's [Q | K | V] blocks; no context length in its config.
    let mut bloom = cfg.clone();
    bloom.run.dir = dir.path().join("bloom");
    bloom.model.path = Some(root().join("tests/fixtures/hf-tiny/bloom-tiny"));
    let llama_types = [GgufType::F32, GgufType::F16, GgufType::Bf16, GgufType::Q8_0];
    let runs = [
        (&cfg, &[Method::Full, Method::Landermt, Method::Lora][..], &llama_types[..], ("llama.context_length", 256)),
        (&bloom, &[Method::Full][..], &[GgufType::F32, GgufType::Q8_0][..], ("bloom.context_length", 8192)),
    ];
    let (mut jobs, mut ours, mut quantized) = (Vec::new(), Vec::new(), Vec::new());
    for (run, methods, types, context) in runs {
        probe(run).unwrap();
        score(run).unwrap();
        route(run).unwrap();
        for &method in methods {
            let system = System::all(method);
            train(run, system).unwrap();
            let files: Vec<(GgufType, String)> = types
                .iter()
                .map(|&ty| {
                    let (job, read) = gguf_read_back(run, system, ty, dir.path(), context);
                    jobs.push(job);
                    ours.push(read.clone());
                    (ty, read.0)
                })
                .collect();
            let file = |ty: GgufType| dir.path().join(&files.iter().find(|(t, _)| *t == ty).unwrap().1);
            quantized.push(serde_json::json!({ "kind": "quantized", "f32": file(GgufType::F32), "file": file(GgufType::Q8_0), "type": "Q8_0" }));
        }
    }
    for (model, refusal) in [("gemma3-tiny", "query_pre_attn_scalar 256"), ("qwen2-tiny", "biases")] {
        let mut other = cfg.clone();
        other.model.path = Some(root().join("tests/fixtures/hf-tiny").join(model));
        let err = format!("{:#}", export(&other, System::all(Method::None), None, Format::Gguf(GgufType::F32), &dir.path().join("x.gguf")).unwrap_err());
        assert!(err.contains(refusal), "{model}: {err}");
    }
    let Some(python) = hf_python() else { return };
    let n = jobs.len();
    jobs.extend(quantized);
    let results = hf_check(&python, dir.path(), &jobs);
    for ((file, logits), r) in ours.iter().zip(&results) {
        let theirs: Vec<f32> = serde_json::from_value(r["logits"].clone()).unwrap();
        let worst = largest_difference(logits, &theirs);
        eprintln!("{file}: transformers' GGUF reader against ours: largest logit difference {worst:.2e}");
        assert!(theirs.len() == logits.len() && worst < 1e-5, "{file}: {worst}");
    }
    // Our q8_0 blocks are gguf-py's quantisation of the same f32 weights, byte for byte.
    for r in &results[n..] {
        let (checked, differ) = (r["checked"].as_array().unwrap(), r["differ"].as_array().unwrap());
        assert!(checked.len() >= 7 && differ.is_empty(), "q8_0 tensors unlike gguf-py's: {differ:?} of {checked:?}");
    }
}

/// The remote code on the real Gemma 3 270M (sliding windows, 262k vocabulary), where it is
/// cached: a Taylor-routed model with a made-up partition in two blocks gives transformers our
/// logits and greedy tokens.
#[test]
fn a_routed_gemma_3_270m_exports_to_what_transformers_computes() {
    use landermt_model::nn::{Partition, Router};
    let cached = landermt_model::cache::known("gemma-3-270m").unwrap();
    if !cached.is_cached() {
        eprintln!("SKIPPED: Gemma 3 270M is not in the model cache ({}); run `cargo xtask fetch-model gemma-3-270m`", cached.path().display());
        return;
    }
    let Some(python) = hf_python() else { return };
    let device = landermt_model::Backend::Flex.device().unwrap();
    let mut model = LanguageModel::load(cached.path(), &device).unwrap();
    let (units, hidden) = (model.config.intermediate_size, model.config.hidden_size);
    let general: Vec<usize> = (0..units).filter(|i| i % 3 == 0).collect();
    let specific: Vec<usize> = (0..units).filter(|i| i % 3 != 0 && i % 5 == 0).collect();
    let other: Vec<usize> = (0..units).filter(|i| i % 3 != 0 && i % 5 != 0).collect();
    let gbar: Vec<f64> = (0..units).map(|i| 0.5 + ((i * 7919) % 101) as f64 / 100.0).collect();
    let partition = Partition { general, specific, other, gbar, constant: 0.6 };
    for layer in [4, 5] {
        model.net.layers[layer].mlp.router = Some(Router::new(CarMode::Taylor, &partition, hidden, &device));
    }
    let dir = tempfile::tempdir().unwrap();
    landermt_model::export::write_hf_folder(&model, &model.net, dir.path()).unwrap();
    let ids = model.encode("Translate this from English to French:\nEnglish: The cat sleeps on the sofa.\nFrench:").unwrap();
    let ours = logits_of(&model.net, &ids);
    let unrouted = {
        let mut plain = model.net.clone();
        plain.layers.iter_mut().for_each(|l| l.mlp.router = None);
        logits_of(&plain, &ids)
    };
    assert!(ours.iter().zip(&unrouted).any(|(a, b)| (a - b).abs() > 1e-2), "the routing changed nothing");
    let r = hf_check(&python, dir.path(), &[serde_json::json!({ "kind": "hf", "model": dir.path(), "ids": ids, "greedy": GREEDY })]);
    let theirs: Vec<f32> = serde_json::from_value(r[0]["logits"].clone()).unwrap();
    let worst = largest_difference(&ours, &theirs);
    let greedy_theirs: Vec<u32> = serde_json::from_value(r[0]["greedy"].clone()).unwrap();
    let greedy_ours = greedy(&model.net, &ids, model.config.vocab_size);
    eprintln!("Gemma 3 270M, Taylor CAR in blocks 4 and 5: largest logit difference {worst:.2e}; greedy {greedy_ours:?} / {greedy_theirs:?}");
    assert!(theirs.len() == ours.len() && worst < 1e-3 && greedy_theirs == greedy_ours, "{worst}: {greedy_theirs:?} against our {greedy_ours:?}");
}

/// A joint run's LANDeRMT routes each pair with its own units: the export names the pair, and
/// the folder computes the model as it reads that pair (the eval stage's routing).
#[test]
fn a_joint_runs_landermt_exports_the_named_pairs_routing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = super::tests::quick_joint(dir.path());
    probe(&cfg).unwrap();
    score(&cfg).unwrap();
    route(&cfg).unwrap();
    let system = System::all(Method::Landermt);
    train(&cfg, system).unwrap();
    let err = format!("{:#}", export(&cfg, system, None, Format::Hf, &dir.path().join("x")).unwrap_err());
    assert!(err.contains("--pair"), "{err}");
    let device = landermt_model::Backend::Flex.device().unwrap();
    let trained = trained_model(&cfg, system).unwrap();
    let routing = Routing::of(&cfg, system).unwrap();
    let ids = trained.encode("Die Katze schläft.").unwrap();
    let mut exported = Vec::new();
    for direction in ["en-fr", "en-de"] {
        let d: Direction = direction.parse().unwrap();
        let out = dir.path().join(format!("export-{direction}"));
        export(&cfg, system, Some(d), Format::Hf, &out).unwrap();
        let read = LanguageModel::load(&out, &device).unwrap();
        let (theirs, ours) = (logits_of(&read.net, &ids), logits_of(&routing.for_direction(&trained, d).net, &ids));
        let worst = largest_difference(&theirs, &ours);
        assert!(worst < 5e-5, "{direction}: {worst}");
        exported.push(theirs);
    }
    assert_ne!(exported[0], exported[1], "the two pairs' exports route alike");
}
