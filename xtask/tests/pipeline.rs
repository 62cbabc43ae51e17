//! `cargo xtask pipeline` on configs/quick.toml, as a user runs it: every stage's artifact and
//! the report are written.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_quick_pipeline_runs_end_to_end() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let text = std::fs::read_to_string(root.join("configs/quick.toml")).unwrap().replace("dir = \"runs/quick\"", &format!("dir = {:?}", run.display().to_string()));
    let cfg = tmp.path().join("quick.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["pipeline", "--config", cfg.to_str().unwrap()]).current_dir(&root).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["layers.json", "neurons.json", "neurons.safetensors", "route.json", "train/landermt/delta.safetensors", "train/landermt/loss.svg", "report.json", "report.md", "figures/delta.svg"] {
        assert!(run.join(file).exists(), "{file} is missing");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| landermt | en-fr | flores |"), "{stdout}");
}
