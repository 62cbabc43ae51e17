//! Hugging Face checkpoint variants: sharded safetensors with an index, and f16/bf16 weights
//! cast to f32 on load (the reference cast is IEEE rounding by the `half` crate).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::fixtures;
use half::{bf16, f16};
use landermt_model::{Backend, Batch, LanguageModel, Taps, Weights};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn logits(m: &LanguageModel, text: &str) -> Vec<f32> {
    let ids = m.tokenizer.encode(text, false).unwrap();
    m.net.logits(m.net.forward(&Batch::single(&ids), None, &mut Taps::none())).into_data().try_into_vec().unwrap()
}

/// Copies config.json and tokenizer.json of the tiny LLaMA into `dir`.
fn copy_side_files(dir: &Path) {
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixtures().join("hf-tiny/llama-tiny").join(f), dir.join(f)).unwrap();
    }
}

fn original() -> Vec<u8> {
    std::fs::read(fixtures().join("hf-tiny/llama-tiny/model.safetensors")).unwrap()
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_side_files(dir.path());
    let bytes = original();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = BTreeMap::new();
    for (shard, part) in [("model-00001-of-00002.safetensors", first), ("model-00002-of-00002.safetensors", second)] {
        let views: Vec<(String, TensorView)> = part.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        std::fs::write(dir.path().join(shard), safetensors::serialize(views, None).unwrap()).unwrap();
        weight_map.extend(part.iter().map(|n| (n.clone(), shard.to_string())));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();

    let device = Backend::Flex.device().unwrap();
    let single = LanguageModel::load(fixtures().join("hf-tiny/llama-tiny"), &device).unwrap();
    let sharded = LanguageModel::load(dir.path(), &device).unwrap();
    let text = "Der schnelle braune Fuchs.";
    assert_eq!(logits(&single, text), logits(&sharded, text));

    // A shard named by the index but missing is an error naming it.
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = LanguageModel::load(dir.path(), &device).unwrap_err().to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

#[test]
fn half_precision_weights_are_cast_to_f32_on_load() {
    let bytes = original();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (dtype, round) in [(Dtype::F16, (|x: f32| f16::from_f32(x).to_f32()) as fn(f32) -> f32), (Dtype::BF16, |x: f32| bf16::from_f32(x).to_f32())] {
        let dir = tempfile::tempdir().unwrap();
        copy_side_files(dir.path());
        let converted: Vec<(String, Vec<u8>, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let data: Vec<u8> = v
                    .data()
                    .chunks_exact(4)
                    .flat_map(|b| {
                        let x = f32::from_le_bytes(b.try_into().unwrap());
                        match dtype {
                            Dtype::F16 => f16::from_f32(x).to_le_bytes(),
                            _ => bf16::from_f32(x).to_le_bytes(),
                        }
                    })
                    .collect();
                (n, data, v.shape().to_vec())
            })
            .collect();
        let views: Vec<(String, TensorView)> = converted.iter().map(|(n, d, s)| (n.clone(), TensorView::new(dtype, s.clone(), d).unwrap())).collect();
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();

        // Every weight equals the IEEE rounding of the f32 original, widened back.
        let weights = Weights::open(&path).unwrap();
        for (name, view) in st.tensors() {
            let want: Vec<f32> = view.data().chunks_exact(4).map(|b| round(f32::from_le_bytes(b.try_into().unwrap()))).collect();
            assert_eq!(weights.get(&name).unwrap().data, want, "{dtype:?} {name}");
        }
        // And the model runs on them, close to the f32 model.
        let device = Backend::Flex.device().unwrap();
        let half = LanguageModel::load(dir.path(), &device).unwrap();
        let full = LanguageModel::load(fixtures().join("hf-tiny/llama-tiny"), &device).unwrap();
        let (d, _) = common::max_abs_diff(&logits(&half, "Le chat."), &logits(&full, "Le chat."));
        assert!(d > 0.0 && d < 0.5, "{dtype:?}: logits moved by {d}");
    }
}
