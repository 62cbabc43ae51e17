//! The bad-input corpus (`tests/bad-inputs/`, written by its `make_cases.py`): every case must
//! fail with an error that names the file (and line or key), a non-zero exit code, no panic and
//! no backtrace (even with `RUST_BACKTRACE=1`), and nothing written or changed in the run
//! folder by the failing command.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::root;
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    /// The input config, relative to `tests/bad-inputs/`.
    config: String,
    /// The failing command and its extra arguments (`--config` is added).
    command: String,
    /// Done first, each of which must succeed: `stage S`, `place SRC DST`, `model EDIT`.
    prepare: Vec<String>,
    /// Substrings the error must contain; the first names the file.
    expect: Vec<String>,
}

/// With backtraces on, so that the test sees one if a panic prints it.
fn xtask(args: &[&str]) -> std::process::Output {
    common::xtask_command(args).env("RUST_BACKTRACE", "1").output().unwrap()
}

/// Every file under `dir` but logs and the lock, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = common::files(dir, &|_| false);
    out.retain(|rel, _| !(rel.ends_with("pipeline.log") || rel.ends_with(".lock")));
    out
}

/// The tiny LLaMA in `to`, damaged as `edit` says.
fn damaged_model(to: &Path, edit: &str) {
    let from = root().join("tests/fixtures/hf-tiny/llama-tiny");
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    let (op, rest) = edit.split_once(' ').unwrap();
    let (arg, value) = rest.split_once(' ').unwrap_or((rest, ""));
    match op {
        "truncate" => {
            let bytes = std::fs::read(to.join(arg)).unwrap();
            std::fs::write(to.join(arg), &bytes[..value.parse::<usize>().unwrap()]).unwrap();
        }
        "write" => std::fs::write(to.join(arg), value).unwrap(),
        "remove" => std::fs::remove_file(to.join(arg)).unwrap(),
        "config" => {
            let path = to.join("config.json");
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v[arg] = serde_json::from_str(value).unwrap();
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
        "drop" | "reshape" | "int32" => rewrite_tensor(&to.join("model.safetensors"), op, arg),
        other => panic!("unknown model edit `{other}`"),
    }
}

/// `model.safetensors` without tensor `name`, with it transposed-flat (`reshape`), or as i32.
fn rewrite_tensor(path: &Path, op: &str, name: &str) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, v) in st.tensors() {
        let (mut dtype, mut shape, data) = (v.dtype(), v.shape().to_vec(), v.data().to_vec());
        if n == name {
            match op {
                "drop" => continue,
                "reshape" => shape = vec![shape.iter().product::<usize>() / 2, 2],
                _ => dtype = Dtype::I32,
            }
        }
        kept.push((n, dtype, shape, data));
    }
    assert!(kept.len() + usize::from(op == "drop") == st.len(), "no tensor `{name}`");
    let views: Vec<(String, TensorView)> = kept.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Runs one case; `Err` says what went wrong.
fn run_case(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let text = std::fs::read_to_string(root().join("tests/bad-inputs").join(&case.config)).unwrap();
    let text = text.replace("@RUN@", &run.display().to_string()).replace("@TMP@", &tmp.path().display().to_string());
    let config = tmp.path().join(Path::new(&case.config).file_name().unwrap());
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    for step in &case.prepare {
        let (op, rest) = step.split_once(' ').unwrap();
        match op {
            "stage" => {
                let out = xtask(&[rest, "--config", config]);
                if !out.status.success() {
                    return Err(format!("preparing with `{rest}` failed: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            "place" => {
                let (src, dst) = rest.split_once(' ').unwrap();
                let dst = PathBuf::from(dst.replace("@RUN@", &run.display().to_string()));
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(root().join("tests/bad-inputs").join(src), dst).unwrap();
            }
            "model" => damaged_model(&tmp.path().join("model"), rest),
            other => panic!("unknown preparation `{other}`"),
        }
    }
    let before = snapshot(&run);
    let mut words = case.command.split_whitespace();
    let mut args = vec![words.next().unwrap(), "--config", config];
    args.extend(words);
    let out = xtask(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.success() || out.status.code().is_none() {
        problems.push(format!("exit status {:?}", out.status));
    }
    if err.contains("panicked") || err.contains("stack backtrace") || err.contains("RUST_BACKTRACE") {
        problems.push("a panic or a backtrace".into());
    }
    if let Some(missing) = case.expect.iter().find(|e| !err.contains(e.as_str())) {
        problems.push(format!("no `{missing}` in the error"));
    }
    if snapshot(&run) != before {
        problems.push("the failing command wrote or changed files in the run folder".into());
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{}; stderr: {}", problems.join(", "), err.trim())) }
}

#[test]
fn every_bad_input_gives_a_clear_error_and_changes_nothing() {
    let manifest: Manifest = toml::from_str(&std::fs::read_to_string(root().join("tests/bad-inputs/cases.toml")).unwrap()).unwrap();
    assert!(manifest.case.len() >= 50, "the corpus has {} cases", manifest.case.len());
    let failures: Vec<String> = manifest.case.iter().filter_map(|c| run_case(c).err().map(|e| format!("{}: {e}", c.name))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), manifest.case.len(), failures.join("\n\n"));
}
