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
    let run_pipeline = |extra: &[&str]| {
        let mut args = vec!["pipeline", "--config", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(&args).current_dir(&root).env("RUST_LOG", "warn").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = run_pipeline(&[]);
    for file in ["layers.json", "neurons.json", "neurons.safetensors", "route.json", "train/landermt/delta.safetensors", "train/landermt/loss.svg", "train/landermt@fr-en/delta.safetensors", "report.json", "report.md", "figures/delta.svg", "figures/transfer-flores.svg", "figures/forgetting-lm.svg"] {
        assert!(run.join(file).exists(), "{file} is missing");
    }
    assert!(first.contains("| landermt | en-fr | flores |"), "{first}");
    let log = std::fs::read_to_string(run.join("pipeline.log")).unwrap();
    assert!(log.contains("model loaded"), "the log file has the stages' info logs:\n{log}");

    // Run again: every stage is current and skipped.
    let second = run_pipeline(&[]);
    for step in ["probe", "score", "route", "train:none", "train:landermt", "train:landermt@en-fr", "eval"] {
        assert!(second.lines().any(|l| l.contains(step) && l.contains("current, skipped")), "{step} was not skipped:\n{second}");
    }
    assert!(second.contains("every stage is current"), "{second}");
    // A changed stage setting makes that stage and the ones after it run again.
    let edited = std::fs::read_to_string(&cfg).unwrap().replace("n_bootstrap = 100", "n_bootstrap = 50");
    std::fs::write(&cfg, edited).unwrap();
    let plan = run_pipeline(&["--dry-run"]);
    assert!(plan.lines().any(|l| l.contains("eval") && l.trim_end().ends_with("run")), "{plan}");
    assert!(plan.lines().any(|l| l.contains("probe") && l.contains("current, skip")), "{plan}");
    // A stage run alone is stamped too: the pipeline then finds it current.
    let status = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["eval", "--config", cfg.to_str().unwrap()]).current_dir(&root).env("RUST_LOG", "warn").output().unwrap();
    assert!(status.status.success());
    let plan = run_pipeline(&["--dry-run"]);
    assert!(plan.lines().any(|l| l.contains("eval") && l.contains("current, skip")), "{plan}");
    let only = run_pipeline(&["--only", "route"]);
    assert!(only.lines().any(|l| l.contains("route") && l.contains("done")) && !only.contains("probe"), "{only}");
}

/// Routing handles one language pair per run: a run over several pairs is refused before any
/// stage runs (not after hours of probing), and `--dry-run` says so.
#[test]
fn a_run_over_several_language_pairs_is_refused_before_it_starts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let text = std::fs::read_to_string(root.join("configs/quick.toml"))
        .unwrap()
        .replace("dir = \"runs/quick\"", &format!("dir = {:?}", run.display().to_string()))
        .replace("directions = [\"en-fr\", \"fr-en\"]", "directions = [\"en-fr\", \"fr-en\", \"en-de\"]");
    let cfg = tmp.path().join("multi.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["pipeline", "--config", cfg.to_str().unwrap()]).current_dir(&root).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("several language pairs (en–fr, de–en)") && err.contains("one config per language pair"), "{err}");
    assert!(!run.join("layers.json").exists(), "probe ran before the refusal");
    let plan = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["pipeline", "--config", "configs/paper.toml", "--dry-run"]).current_dir(&root).output().unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("note:") && plan.contains("train:landermt"), "{plan}");
}
