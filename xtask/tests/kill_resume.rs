//! A training run killed (SIGKILL) after its first checkpoint, started again with the same
//! command, ends with the same trained tensors as a run that was never interrupted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).current_dir(root()).env("RUST_LOG", "warn");
    c
}

/// configs/quick.toml writing into `run`, with a longer training run checkpointed every step.
fn config(dir: &Path, run: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("configs/quick.toml")).unwrap();
    let text = text
        .replace("dir = \"runs/quick\"", &format!("dir = {:?}", run.display().to_string()))
        .replace("pairs = 4 ", "pairs = 24 ")
        .replace("batch_size = 2\n", "batch_size = 1\n")
        .replace("checkpoint_every = 2", "checkpoint_every = 1");
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn trained(run: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(run.join("train/landermt/delta.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    out.sort();
    out
}

#[test]
fn a_killed_training_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (cfg_a, cfg_b) = (config(&tmp.path().join(""), &a), {
        std::fs::create_dir_all(tmp.path().join("cb")).unwrap();
        config(&tmp.path().join("cb"), &b)
    });
    let cfg_a = cfg_a.to_str().unwrap().to_string();
    let cfg_b = cfg_b.to_str().unwrap().to_string();
    for stage in ["probe", "score", "route", "train"] {
        assert!(xtask(&[stage, "--config", &cfg_a]).status().unwrap().success(), "{stage}");
    }
    for stage in ["probe", "score", "route"] {
        assert!(xtask(&[stage, "--config", &cfg_b]).status().unwrap().success(), "{stage}");
    }

    let mut child = xtask(&["train", "--config", &cfg_b]).spawn().unwrap();
    let ckpt = b.join("train/landermt/checkpoint.safetensors");
    let start = Instant::now();
    while !ckpt.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!b.join("train/landermt/delta.safetensors").exists(), "the run finished before it could be killed");

    assert!(xtask(&["train", "--config", &cfg_b]).status().unwrap().success());
    let (x, y) = (trained(&a), trained(&b));
    assert!(!x.is_empty());
    assert!(x == y, "the resumed run ends with other weights");
}

#[test]
fn a_killed_sweep_resumes_without_redoing_finished_points() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = config(tmp.path(), &run);
    let cfg = cfg.to_str().unwrap();
    let args = ["sweep", "--config", cfg, "--method", "landermt", "--set", "train.lr=1e-2,3e-2", "--dev-lines", "1"];
    let sweep = run.join("sweep/landermt/train.lr");
    let (first, second) = (sweep.join("1e-2/train/landermt/delta.safetensors"), sweep.join("3e-2/train/landermt/delta.safetensors"));

    // Killed once the first point has trained (its stamp is written after its delta).
    let stamp = sweep.join("1e-2/.stamps/train-landermt");
    let mut child = xtask(&args).stdout(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while !stamp.exists() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.exists() && !second.exists(), "the sweep was not killed between its points");
    let (upstream, trained) = (std::fs::metadata(run.join("neurons.json")).unwrap().modified().unwrap(), std::fs::metadata(&first).unwrap().modified().unwrap());

    // The same command again trains only the second point.
    let out = xtask(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sweep: 1 steps run"), "{stdout}");
    assert_eq!(std::fs::metadata(run.join("neurons.json")).unwrap().modified().unwrap(), upstream, "score ran again");
    assert_eq!(std::fs::metadata(&first).unwrap().modified().unwrap(), trained, "the first point was trained again");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(sweep.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(report["points"].as_array().unwrap().len(), 2);
}

/// Two commands on one run folder: the second is refused, naming the first's PID, while the
/// first runs; once the first is killed, its lock is stale and the next run takes it over.
#[test]
fn a_second_run_on_the_same_folder_is_refused_and_a_killed_runs_lock_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = config(tmp.path(), &run);
    let cfg = cfg.to_str().unwrap();
    for stage in ["probe", "score", "route"] {
        assert!(xtask(&[stage, "--config", cfg]).status().unwrap().success(), "{stage}");
    }
    let mut child = xtask(&["train", "--config", cfg]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let ckpt = run.join("train/landermt/checkpoint.safetensors");
    let start = Instant::now();
    while !ckpt.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(std::fs::read_to_string(run.join(".lock")).unwrap(), child.id().to_string());
    for args in [vec!["pipeline", "--config", cfg], vec!["eval", "--config", cfg], vec!["sweep", "--config", cfg, "--method", "landermt", "--set", "train.lr=1e-2"]] {
        let out = xtask(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&format!("in use by process {}", child.id())), "{args:?}: {err}");
    }
    assert!(!run.join("report.json").exists(), "the refused pipeline wrote its report");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = xtask(&["pipeline", "--config", cfg]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stale lock"), "{err}");
    assert!(run.join("report.json").exists());
    assert_eq!(std::fs::read_to_string(run.join(".lock")).unwrap(), "", "released at exit");
}
