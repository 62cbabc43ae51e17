//! Bad input gives an error that names the file (and the tensor), never a panic.

mod common;

use std::path::Path;

use common::fixtures;
use landermt_model::{Backend, Batch, LanguageModel, ModelError, Taps};

fn load(path: &Path) -> Result<LanguageModel, ModelError> {
    LanguageModel::load(path, &Backend::Flex.device().unwrap())
}

/// A copy of a fixture model folder that a test may damage.
fn copy_model(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("hf-tiny").join(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

fn message(r: Result<LanguageModel, ModelError>) -> String {
    r.expect_err("loading should fail").to_string()
}

#[test]
fn missing_model_names_the_path() {
    let msg = message(load(Path::new("/nonexistent/model-dir")));
    assert!(msg.contains("/nonexistent/model-dir"), "{msg}");
}

#[test]
fn truncated_safetensors_is_a_format_error() {
    let dir = copy_model("llama-tiny");
    let p = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Format { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors") && err.to_string().contains("truncated"), "{err}");
}

#[test]
fn truncated_gguf_names_the_tensor_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.gguf");
    let bytes = std::fs::read(fixtures().join("gguf/llama-tiny.gguf")).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    let msg = message(load(&p));
    assert!(msg.contains("cut.gguf") && msg.contains("truncated") && msg.contains("tensor `"), "{msg}");
    // Cut inside the header too.
    std::fs::write(&p, &bytes[..100]).unwrap();
    let msg = message(load(&p));
    assert!(msg.contains("cut.gguf") && msg.contains("truncated"), "{msg}");
}

#[test]
fn unknown_quantization_type_is_named() {
    // A minimal GGUF v3: no metadata, one tensor `x` of 32 elements with ggml type 99.
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(b"x");
    b.extend(1u32.to_le_bytes());
    b.extend(32u64.to_le_bytes());
    b.extend(99u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("odd.gguf");
    std::fs::write(&p, &b).unwrap();
    let err = landermt_model::gguf::GgufFile::open(&p).unwrap_err();
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("type id 99") && err.to_string().contains("`x`"), "{err}");
}

#[test]
fn unknown_architecture_is_named() {
    let dir = copy_model("llama-tiny");
    edit_config(dir.path(), |c| c["model_type"] = "mamba".into());
    let msg = message(load(dir.path()));
    assert!(msg.contains("config.json") && msg.contains("mamba"), "{msg}");
}

#[test]
fn shape_mismatch_names_file_and_tensor() {
    let dir = copy_model("llama-tiny");
    edit_config(dir.path(), |c| c["intermediate_size"] = 100.into());
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Shape { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors") && msg.contains("mlp.gate_proj.weight") && msg.contains("[176, 64]"), "{msg}");
}

#[test]
fn tokenizer_larger_than_the_embedding_is_refused() {
    let dir = copy_model("llama-tiny");
    edit_config(dir.path(), |c| c["vocab_size"] = 1000.into());
    let msg = message(load(dir.path()));
    assert!(msg.contains("tokenizer") && msg.contains("1888") && msg.contains("1000"), "{msg}");
}

#[test]
fn malformed_config_is_a_config_error() {
    let dir = copy_model("bloom-tiny");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let msg = message(load(dir.path()));
    assert!(msg.contains("config.json") && msg.contains("JSON"), "{msg}");
    edit_config_raw(dir.path(), r#"{"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": -1, "vocab_size": 600}"#);
    let msg = message(load(dir.path()));
    assert!(msg.contains("n_layer"), "{msg}");
}

fn edit_config_raw(dir: &Path, text: &str) {
    std::fs::write(dir.join("config.json"), text).unwrap();
}

#[test]
fn bloom_weights_without_the_transformer_prefix_load_the_same() {
    // Real bigscience checkpoints are saved from BloomModel: no `transformer.` prefix, no lm_head.
    let dir = copy_model("bloom-tiny");
    let p = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| n != "lm_head.weight").map(|(n, v)| (n.strip_prefix("transformer.").unwrap_or(&n).to_string(), v)).collect();
    assert!(renamed.iter().all(|(n, _)| !n.starts_with("transformer.")));
    let out = safetensors::serialize(renamed, None).unwrap();
    drop(st);
    std::fs::write(&p, out).unwrap();

    let original = load(&fixtures().join("hf-tiny/bloom-tiny")).unwrap();
    let stripped = load(dir.path()).unwrap();
    let ids = original.tokenizer.encode("Le chat dort.", false).unwrap();
    let run = |m: &LanguageModel| -> Vec<f32> { m.net.logits(m.net.forward(&Batch::single(&ids), None, &mut Taps::none())).into_data().try_into_vec::<f32>().unwrap() };
    assert_eq!(run(&original), run(&stripped));
}

/// A GGUF header and 64 bytes of zeros (see `gguf::write::header`).
fn gguf_header(kv: &[(&str, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>, u32, u64)]) -> Vec<u8> {
    let mut out = landermt_model::gguf::write::header(kv, tensors);
    out.resize(out.len() + 64, 0);
    out
}

/// Headers that declare what no file can hold are refused with a format error naming the
/// file, before anything is allocated for them, and without overflowing or recursing.
#[test]
fn gguf_headers_declaring_impossible_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nested = {
        // An array of arrays of arrays …: 12 bytes a level.
        let mut v = Vec::new();
        for _ in 0..10_000 {
            v.extend(9u32.to_le_bytes());
            v.extend(1u64.to_le_bytes());
        }
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dims-overflow.gguf", gguf_header(&[], &[("t", vec![1 << 40, 1 << 40], 0, 0)]), "overflow"),
        ("huge-tensor.gguf", gguf_header(&[], &[("t", vec![1 << 31, 1 << 30], 0, 0)]), "truncated"),
        ("offset-overflow.gguf", gguf_header(&[], &[("t", vec![4], 0, u64::MAX - 2)]), "truncated"),
        ("alignment.gguf", gguf_header(&[("general.alignment", 10, (u64::MAX - 3).to_le_bytes().to_vec())], &[]), "alignment"),
        ("nested.gguf", gguf_header(&[("a", 9, nested)], &[]), "nested metadata array"),
        ("long-array.gguf", gguf_header(&[("a", 9, [4u32.to_le_bytes().to_vec(), (u64::MAX / 2).to_le_bytes().to_vec()].concat())], &[]), "exceeds the file"),
        ("long-string.gguf", gguf_header(&[("a", 8, (u64::MAX - 7).to_le_bytes().to_vec())], &[]), "truncated"),
    ];
    for (name, bytes, what) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = landermt_model::gguf::GgufFile::open(&p).expect_err(name).to_string();
        assert!(err.contains(name) && err.contains(what), "{name}: {err}");
    }
}
