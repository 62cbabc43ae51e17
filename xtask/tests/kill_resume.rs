//! A training run killed (SIGKILL) after its first checkpoint, started again with the same
//! command, ends with the same trained tensors as a run that was never interrupted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::xtask_command as xtask;

/// configs/quick.toml writing into `run`, with a longer training run checkpointed every step,
/// and longer hypotheses (each system's decoding step then lasts long enough to be killed in).
fn config(dir: &Path, run: &Path) -> PathBuf {
    let longer = [("pairs = 4 ", "pairs = 24 "), ("batch_size = 2\n", "batch_size = 1\n"), ("checkpoint_every = 2", "checkpoint_every = 1"), ("max_new_tokens = 8", "max_new_tokens = 32")];
    common::quick_config(dir, run, &longer)
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

/// The artifacts of a run that must not depend on being interrupted: every JSON and hypothesis
/// file with its timing fields removed, and the tensors of every safetensors file.
fn outcome(run: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                // Timings, and hashes of delta files (whose metadata records the training's
                // seconds: their tensors are compared below).
                m.retain(|k, _| !(k.contains("seconds") || k.contains("per_second") || k == "delta_sha256" || k == "key"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for (rel, bytes) in common::files(run, &|rel| rel.starts_with("figures")) {
        let value = if rel.ends_with(".json") {
            // Paths inside name the run folder, which differs between the two runs.
            let text = String::from_utf8(bytes).unwrap().replace(&run.display().to_string(), "RUN");
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            strip(&mut v);
            serde_json::to_vec(&v).unwrap()
        } else if rel.ends_with(".safetensors") && !rel.ends_with("checkpoint.safetensors") {
            // (A checkpoint is the means, not an artifact: Burn serialises its optimizer
            // state in an order that varies; the training it resumes is compared through
            // the deltas.)
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let mut t: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
            t.sort();
            t.into_iter().flat_map(|(n, d)| [n.into_bytes(), d]).flatten().collect()
        } else if rel.ends_with(".hyp") || rel.ends_with(".csv") {
            bytes
        } else {
            continue; // logs, stamps, report.md (timings), the lock
        };
        out.insert(rel, value);
    }
    out
}

/// The stage a killed run was in: the last one its progress lines show running and not done.
fn running_stage(progress: &str) -> String {
    let mut stage = "startup".to_string();
    for line in progress.lines() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [.., name, "running"] => stage = name.to_string(),
            [.., name, "done", "in", _] if *name == stage => stage = format!("after {name}"),
            _ => {}
        }
    }
    stage
}

/// Starts the pipeline, waits until it reports `stage` running (or skipped), lets it work
/// 20–400 ms more (every stage of this run takes longer from scratch, and a stage killed before
/// resumes from its partial results, so a second kill lands later in it), and kills it
/// (SIGKILL). Returns the stage it was in when killed, or None if it finished first.
fn kill_during(cfg: &Path, progress: &Path, stage: &str, rng: &mut u64) -> Option<String> {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let stdout = std::fs::File::create(progress).unwrap();
    let log = progress.with_extension("err");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = xtask(&["pipeline", "--config", cfg.to_str().unwrap()]).stdout(stdout).stderr(stderr).spawn().unwrap();
    let running = format!(" {stage} ");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let text = std::fs::read_to_string(progress).unwrap_or_default();
        // An aim at a step an earlier kill let finish finds it skipped: the kill then lands in
        // the steps after it, rather than never (waiting for it would let the run finish).
        if text.lines().any(|l| l.contains(&running) && (l.ends_with("running") || l.ends_with("skipped"))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20 + *rng % 380));
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    if !killed {
        // Why it ended on its own (finished, or failed) is what a failing count needs.
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        eprintln!("aim {stage}: the run ended by itself ({status}); stderr ends {:?}", tail.into_iter().rev().collect::<Vec<_>>());
    }
    killed.then(|| running_stage(&std::fs::read_to_string(progress).unwrap()))
}

/// SIGKILL at ten moments aimed at the stages (probe, score, route, training with a checkpoint
/// after every step, each system's decoding): after the last restart every artifact equals an
/// uninterrupted run's, and the kills did land in score, training and decoding.
#[test]
fn a_pipeline_killed_ten_times_ends_with_the_artifacts_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(tmp.path().join("cb")).unwrap();
    let (cfg_a, cfg_b) = (config(tmp.path(), &a), config(&tmp.path().join("cb"), &b));
    assert!(xtask(&["pipeline", "--config", cfg_a.to_str().unwrap()]).output().unwrap().status.success());

    // Ten kills aimed at the steps in plan order (an aim at a step already done kills in the
    // steps after it), each at a random moment early in its step: training checkpoints after
    // every step, so its kills fall in and between checkpoint writes. Neither the eval step,
    // which only scores kept hypotheses, nor the last decoding step (0.2 s) is aimed at: the
    // run would often finish before the kill.
    let aims = ["probe", "score", "score", "route", "decode:none", "train:landermt", "train:landermt", "decode:landermt", "train:landermt@en-fr", "decode:landermt@en-fr"];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let progress = tmp.path().join("progress.txt");
    let killed: Vec<String> = aims.iter().filter_map(|&stage| kill_during(&cfg_b, &progress, stage, &mut rng)).collect();
    eprintln!("killed during: {killed:?}");
    let out = xtask(&["pipeline", "--config", cfg_b.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kills = killed.len();
    assert!(kills >= 8, "only {kills} of 10 runs were killed before they finished: {killed:?}");
    for stage in ["score", "train:landermt"] {
        assert!(killed.iter().any(|k| k == stage), "no kill during {stage}: {killed:?}");
    }
    assert!(killed.iter().any(|k| k.starts_with("decode:")), "no kill during a decoding step: {killed:?}");
    let (x, y) = (outcome(&a), outcome(&b));
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
    for (k, v) in &x {
        if y[k] != *v {
            let at = v.iter().zip(&y[k]).position(|(p, q)| p != q).unwrap_or(v.len().min(y[k].len()));
            let show = |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(200)..(at + 200).min(b.len())]).to_string();
            panic!("{k} differs after {kills} kills:\n{}\n---\n{}", show(v), show(&y[k]));
        }
    }
}
