//! Helpers shared by the command-line tests: the repository, the xtask binary, a quick config
//! writing into a temporary run folder, and the files a run leaves.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo xtask ARGS`, from the repository root, with warnings only.
pub fn xtask_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).current_dir(root()).env("RUST_LOG", "warn");
    c
}

pub fn xtask(args: &[&str]) -> Output {
    xtask_command(args).output().unwrap()
}

/// `cargo xtask pipeline --config CFG EXTRA…`, which must succeed; its standard output.
pub fn pipeline(cfg: &Path, extra: &[&str]) -> String {
    let mut args = vec!["pipeline", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// configs/quick.toml writing into `run`, with each `(from, to)` replacement applied, saved as
/// `dir/run.toml`.
pub fn quick_config(dir: &Path, run: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("configs/quick.toml")).unwrap().replace("dir = \"runs/quick\"", &format!("dir = {:?}", run.display().to_string()));
    for (from, to) in edits {
        assert!(text.contains(from), "configs/quick.toml no longer holds `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file under `dir` (relative path → bytes), leaving out the folders `skip_dir` names.
pub fn files(dir: &Path, skip_dir: &dyn Fn(&str) -> bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                if !skip_dir(&rel) {
                    stack.push(p);
                }
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
