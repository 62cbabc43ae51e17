//! The `checkpoint` target: stage 4's training files, loaded into the tiny LLaMA fixture.
//!
//! A flipped byte almost always fails the SHA-256 in the metadata, which would stop every
//! mutant at the first check. So each mutant that still parses as safetensors is tried twice:
//! as it is, and re-serialised with the checksum of its mutated tensors, which reaches the
//! state, the tensor names and shapes, and Burn's optimizer record behind it.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Device;
use landermt_data::{Direction, ParallelSource, prompt::mixed, read_parallel};
use landermt_model::LanguageModel;
use landermt_train::trainer::{self, Run};
use landermt_train::{Method, Settings, Trainee, example};
use safetensors::{SafeTensors, tensor::TensorView};

/// The layer `layers` trains: one block keeps the files small (a few hundred kilobytes).
const SELECTED: [usize; 1] = [1];

fn setup() -> serde_json::Value {
    serde_json::json!({ "method": "layers", "fuzz": true })
}

fn model(root: &Path) -> LanguageModel {
    LanguageModel::load(root.join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex().autodiff()).expect("the tiny LLaMA fixture")
}

thread_local! {
    static TRAINEE: std::cell::OnceCell<Trainee> = const { std::cell::OnceCell::new() };
}

fn fresh(root: &Path) -> Trainee {
    TRAINEE.with(|t| t.get_or_init(|| Trainee::new(model(root).net, Method::Layers, None, &SELECTED)).clone())
}

/// A checkpoint after one of two steps, and the final delta.
pub fn seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let m = model(root);
    let direction: Direction = "en-fr".parse().expect("valid");
    let source = ParallelSource::Tsv { path: root.join("data/corpus/train.en-fr.tsv"), src_lang: "en".into(), tgt_lang: "fr".into() };
    let pairs = read_parallel(&source, direction).map_err(std::io::Error::other)?;
    let examples: Vec<_> = pairs.iter().filter_map(|p| example(&m, direction, p, &mixed()[0], 80).ok().flatten()).take(4).collect();
    let settings = Settings { lr: 1e-2, batch_size: 2, grad_accum: 1, epochs: 1, warmup_steps: 1, checkpoint_every: 1, ..Default::default() };
    let dir = tempfile::tempdir()?;
    let train = [examples.clone()];
    let go = |stop_after| {
        let r = Run { settings: &settings, train: &train, dev: &examples[..1], pad_id: 0, setup: setup(), dir: dir.path(), stop_after, progress: &|_, _, _| {} };
        trainer::run(Trainee::new(m.net.clone(), Method::Layers, None, &SELECTED), &r).map_err(std::io::Error::other)
    };
    go(Some(1))?;
    let checkpoint = std::fs::read(dir.path().join("checkpoint.safetensors"))?;
    go(None)?;
    Ok(vec![checkpoint, std::fs::read(dir.path().join("delta.safetensors"))?])
}

pub fn run(work: &Path, input: &[u8]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = work.join("checkpoint.safetensors");
    for bytes in std::iter::once(input.to_vec()).chain(with_checksum_made_right(input)) {
        std::fs::write(&path, &bytes).expect("scratch folder");
        let _ = trainer::load_trained(&path, fresh(&root));
        let trainee = fresh(&root);
        let optim = landermt_train::optim::Optim::new(&trainee, &Settings::default());
        let _ = trainer::load(&path, trainee, optim, &setup());
    }
}

/// `input` re-serialised with the `landermt.sha256` of its tensors, if it parses.
fn with_checksum_made_right(input: &[u8]) -> Option<Vec<u8>> {
    let st = SafeTensors::deserialize(input).ok()?;
    let (_, meta) = SafeTensors::read_metadata(input).ok()?;
    let mut meta: HashMap<String, String> = meta.metadata().clone()?;
    let mut views: Vec<(String, TensorView)> = st.tensors();
    // The checksum covers the trained tensors in order, then the optimizer, then the lazy
    // optimizer's tensors by name (trainer.rs).
    views.sort_by_key(|(n, _)| (n.starts_with("lazy."), n == "optimizer", n.strip_prefix("trainable.").and_then(|k| k.parse::<usize>().ok()), n.clone()));
    meta.insert(trainer::CHECKSUM_KEY.into(), trainer::checksum(views.iter().map(|(n, v)| (n.as_str(), v.data()))));
    safetensors::serialize(views, Some(meta)).ok()
}
