//! GGUF reading checked against the `gguf` Python package (tests/fixtures/gguf, made by
//! make_quants.py and make_tiny_gguf.py there): metadata of every value type, dequantisation of
//! every implemented type, and the tiny BLOOM/LLaMA models converted as llama.cpp converts them,
//! which transformers loads to the exact logits of the Hugging Face originals.

mod common;

use common::{Reference, assert_close, fixtures};
use landermt_model::gguf::{GgufFile, Value};
use landermt_model::{Backend, Batch, LanguageModel, Taps};

fn gguf_dir() -> std::path::PathBuf {
    fixtures().join("gguf")
}

#[test]
fn metadata_of_every_value_type_reads_back() {
    let g = GgufFile::open(gguf_dir().join("quants.gguf")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(gguf_dir().join("quants_expected.json")).unwrap()).unwrap();
    let meta = expected["metadata"].as_object().unwrap();
    assert!(meta.len() >= 15, "fixture lists {} keys", meta.len());
    for (key, entry) in meta {
        let got = g.get(key).unwrap_or_else(|| panic!("missing key {key}"));
        let want = &entry["value"];
        let same = match (got, want) {
            (Value::String(s), serde_json::Value::String(w)) => s == w,
            (Value::Bool(b), serde_json::Value::Bool(w)) => b == w,
            (Value::F32(x), w) => *x as f64 == w.as_f64().unwrap(),
            (Value::F64(x), w) => *x == w.as_f64().unwrap(),
            (Value::Array(items), serde_json::Value::Array(ws)) => {
                items.len() == ws.len()
                    && items.iter().zip(ws).all(|(i, w)| match (i, w) {
                        (Value::String(s), serde_json::Value::String(w)) => s == w,
                        (Value::Bool(b), serde_json::Value::Bool(w)) => b == w,
                        (i, w) if w.is_f64() => i.as_f64() == w.as_f64(),
                        (i, w) => i.as_i64() == w.as_i64(),
                    })
            }
            (v, w) => v.as_i64() == w.as_i64() && w.as_i64().is_some(),
        };
        assert!(same, "{key}: got {got:?}, want {want}");
    }
}

#[test]
fn dequantization_equals_gguf_py_for_every_type() {
    let g = GgufFile::open(gguf_dir().join("quants.gguf")).unwrap();
    let want = Reference::open(gguf_dir().join("quants_expected.safetensors"));
    let types = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"];
    for name in types {
        let (data, shape) = g.tensor_f32(name).unwrap();
        let (expected, eshape) = want.f32(name);
        assert_eq!(shape, eshape, "{name}: shape");
        // Same operations in the same order as ggml's reference code: bit-identical.
        let mismatches = data.iter().zip(&expected).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(mismatches, 0, "{name}: {mismatches} of {} values differ from gguf-py", data.len());
        assert!(expected.iter().any(|&x| x != 0.0), "{name}: fixture is all zeros");
    }
}

/// A GGUF conversion of a tiny fixture model must compute what its Hugging Face original does.
fn check_gguf_model(file: &str, hf: &str) {
    let device = Backend::Flex.device().unwrap();
    let model = LanguageModel::load(gguf_dir().join(file), &device).unwrap();
    let dir = fixtures().join("hf-tiny").join(hf);
    let reference = Reference::open(dir.join("reference.safetensors"));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    for (k, text) in meta["prompts"].as_array().unwrap().iter().enumerate() {
        let ids = model.tokenizer.encode(text.as_str().unwrap(), false).unwrap();
        assert_eq!(ids, reference.ids(&format!("ids_{k}")), "{file} prompt {k}: token ids");
        let logits = model.net.logits(model.net.forward(&Batch::single(&ids), None, &mut Taps::none()));
        let logits: Vec<f32> = logits.into_data().try_into_vec::<f32>().unwrap();
        assert_close(&format!("{file} prompt {k} logits"), &logits, &reference.f32(&format!("logits_{k}")).0, 1e-4);
    }
}

#[test]
fn llama_gguf_with_permuted_qk_and_sentencepiece_vocab_matches_transformers() {
    check_gguf_model("llama-tiny.gguf", "llama-tiny");
}

#[test]
fn bloom_gguf_with_qkv_blocks_and_byte_level_vocab_matches_transformers() {
    check_gguf_model("bloom-tiny.gguf", "bloom-tiny");
}

#[test]
fn q8_0_model_dequantizes_to_the_same_weights_as_gguf_py() {
    // The Q8_0 file's weights are the f32 file's, quantised; each loaded matrix must equal
    // gguf-py's dequantisation (checked per type above), so the logits stay close to the f32 model.
    let device = Backend::Flex.device().unwrap();
    let q8 = LanguageModel::load(gguf_dir().join("llama-tiny-q8_0.gguf"), &device).unwrap();
    let f32m = LanguageModel::load(gguf_dir().join("llama-tiny.gguf"), &device).unwrap();
    let ids = q8.tokenizer.encode("Le chat dort sur le canapé.", false).unwrap();
    let run = |m: &LanguageModel| -> Vec<f32> { m.net.logits(m.net.forward(&Batch::single(&ids), None, &mut Taps::none())).into_data().try_into_vec::<f32>().unwrap() };
    let (a, b) = (run(&q8), run(&f32m));
    let (d, _) = common::max_abs_diff(&a, &b);
    // transformers measured 0.23–0.33 on this file (tests/fixtures/gguf/README.md).
    assert!(d > 0.0 && d < 0.5, "q8_0 vs f32 logits differ by {d}");
}
