//! Behaviour unchanged (issue 40): `cargo xtask pipeline` on configs/quick.toml gives the
//! artifacts recorded in `tests/fixtures/quick-pipeline/golden.json`. Everything discrete must
//! be identical: hypotheses, the chosen layers and units, every string and integer. Floats
//! (scores, losses, BLEU, tensor sums) must agree within 1e-4 relative, because another CPU's
//! GEMM kernel may sum in another order. Timings and paths are left out.
//!
//! After an intended change of behaviour: `LANDERMT_UPDATE_GOLDEN=1 cargo test -p xtask --test
//! quick_golden`, and say in the commit what changed.

mod common;

use std::path::Path;

use common::{files, pipeline, quick_config, root};
use serde_json::{Map, Value, json};

/// Keys whose values depend on the machine, the clock or the folder, not on the method.
const VOLATILE: &[&str] = &[
    "key",
    "hypotheses",
    "sentences_per_second",
    "train_tokens_per_second",
    "tokens_per_second",
    "seconds",
    "elapsed_seconds",
    "delta_sha256",
    "sha256",
    "kernel",
    "gemm",
    "date",
    "created",
    "path",
    "dir",
    "source",
];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !VOLATILE.contains(&k.as_str()));
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Each tensor as its element count, sum, sum of squares and first four values.
fn tensor_summary(bytes: &[u8]) -> Value {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut out = Map::new();
    for (name, view) in st.tensors() {
        use safetensors::Dtype;
        let d = view.data();
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => d.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => d.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::I64 => d.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::I32 => d.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::U32 => d.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::U8 | Dtype::BOOL => d.iter().map(|&b| b as f64).collect(),
            other => panic!("{name}: no summary for {other:?} tensors"),
        };
        let sum: f64 = values.iter().sum();
        let squares: f64 = values.iter().map(|x| x * x).sum();
        out.insert(name, json!({ "n": values.len(), "sum": sum, "squares": squares, "first": &values[..values.len().min(4)] }));
    }
    Value::Object(out)
}

/// The run's artifacts as one JSON value: path → content (JSON stripped of volatile keys,
/// hypotheses as text, tensors summarised).
fn summary(run: &Path) -> Value {
    let skip = |d: &str| d.starts_with(".stamps") || d.starts_with("figures") || d.ends_with("/.stamps");
    let mut out = Map::new();
    for (path, bytes) in files(run, &skip) {
        let value = if path.ends_with(".json") {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            strip(&mut v);
            v
        } else if path.ends_with(".hyp") {
            Value::String(String::from_utf8(bytes).unwrap())
        } else if path.ends_with(".safetensors") && !path.ends_with("checkpoint.safetensors") {
            tensor_summary(&bytes)
        } else {
            continue;
        };
        out.insert(path, value);
    }
    Value::Object(out)
}

/// Where `got` differs from `want` (floats within 1e-4 relative), as `path: want → got`.
fn differences(want: &Value, got: &Value, at: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for k in w.keys().chain(g.keys().filter(|k| !w.contains_key(*k))) {
                differences(w.get(k).unwrap_or(&Value::Null), g.get(k).unwrap_or(&Value::Null), &format!("{at}/{k}"), out);
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w.iter().zip(g).enumerate().for_each(|(i, (w, g))| differences(w, g, &format!("{at}[{i}]"), out)),
        (Value::Number(w), Value::Number(g)) if w.is_f64() || g.is_f64() => {
            let (w, g) = (w.as_f64().unwrap(), g.as_f64().unwrap());
            if (w - g).abs() > 1e-4 * w.abs().max(g.abs()).max(1.0) {
                out.push(format!("{at}: {w} → {g}"));
            }
        }
        (w, g) if w != g => out.push(format!("{at}: {} → {}", short(w), short(g))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 { format!("{}…", &s[..s.floor_char_boundary(120)]) } else { s }
}

#[test]
fn the_quick_pipeline_gives_the_recorded_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    pipeline(&quick_config(tmp.path(), &run, &[]), &[]);
    let got = summary(&run);
    let golden = root().join("tests/fixtures/quick-pipeline/golden.json");
    if std::env::var_os("LANDERMT_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, serde_json::to_vec_pretty(&got).unwrap()).unwrap();
    }
    let want: Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
    let mut diffs = Vec::new();
    differences(&want, &got, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "the quick pipeline's artifacts changed ({} differences; LANDERMT_UPDATE_GOLDEN=1 records an intended change):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
}
