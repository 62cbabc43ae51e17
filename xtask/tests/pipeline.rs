//! `cargo xtask pipeline` on configs/quick.toml, as a user runs it: every stage's artifact and
//! the report are written.

mod common;

use common::{quick_config, xtask};

#[test]
fn the_quick_pipeline_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = quick_config(tmp.path(), &run, &[]);
    let run_pipeline = |extra: &[&str]| common::pipeline(&cfg, extra);
    let first = run_pipeline(&[]);
    for file in [
        "layers.json",
        "neurons.json",
        "neurons.safetensors",
        "route.json",
        "train/landermt/delta.safetensors",
        "train/landermt/loss.svg",
        "train/landermt@fr-en/delta.safetensors",
        "report.json",
        "report.md",
        "figures/delta.svg",
        "figures/transfer-flores.svg",
        "figures/forgetting-lm.svg",
    ] {
        assert!(run.join(file).exists(), "{file} is missing");
    }
    assert!(first.contains("| landermt | en-fr | flores |"), "{first}");
    let log = std::fs::read_to_string(run.join("pipeline.log")).unwrap();
    assert!(log.contains("model loaded"), "the log file has the stages' info logs:\n{log}");

    // Run again: every stage is current and skipped.
    let second = run_pipeline(&[]);
    for step in ["probe", "score", "route", "train:none", "decode:none", "train:landermt", "decode:landermt", "train:landermt@en-fr", "eval"] {
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
    let status = xtask(&["eval", "--config", cfg.to_str().unwrap()]);
    assert!(status.status.success());
    let plan = run_pipeline(&["--dry-run"]);
    assert!(plan.lines().any(|l| l.contains("eval") && l.contains("current, skip")), "{plan}");
    let only = run_pipeline(&["--only", "route"]);
    assert!(only.lines().any(|l| l.contains("route") && l.contains("done")) && !only.contains("probe"), "{only}");
}

/// A run over two language pairs: each pair probes, routes, trains and evaluates in
/// `pairs/{pair}/` with its own stamps around one shared score stage; `--pairs` runs some
/// pairs, adding a pair later runs only that pair's steps, and the joint report has every
/// direction as a column; `transfer` decodes each pair's landermt on the other pair's
/// directions (the transfer matrix across pairs).
#[test]
fn a_run_over_two_language_pairs_keeps_per_pair_artifacts_and_stamps() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = quick_config(
        tmp.path(),
        &run,
        &[
            ("directions = [\"en-fr\", \"fr-en\"]", "directions = [\"en-fr\", \"fr-en\", \"en-de\", \"de-en\"]"),
            ("{ kind = \"tsv\", path = \"data/corpus/train.en-fr.tsv\", src_lang = \"en\", tgt_lang = \"fr\" }", "{ kind = \"corpus\", dir = \"data/corpus\", split = \"train\" }"),
            ("{ kind = \"tsv\", path = \"data/corpus/dev.en-fr.tsv\", src_lang = \"en\", tgt_lang = \"fr\" }", "{ kind = \"corpus\", dir = \"data/corpus\", split = \"dev\" }"),
            ("extra_directions = [\"en-de\"]", "extra_directions = []"),
        ],
    );
    let pipeline = |extra: &[&str]| common::pipeline(&cfg, extra);

    let plan = pipeline(&["--dry-run"]);
    assert!(!run.exists(), "a dry run creates nothing, not even the run folder");
    for step in ["en-fr/probe", "en-de/probe", "score", "en-fr/route", "en-de/train:landermt", "en-de/eval", "report"] {
        assert!(plan.lines().any(|l| l.split_whitespace().next() == Some(step) && l.trim_end().ends_with("run")), "{step} not planned:\n{plan}");
    }

    let first = pipeline(&["--pairs", "en-fr"]);
    for file in ["neurons.json", "pairs/en-fr/layers.json", "pairs/en-fr/route.json", "pairs/en-fr/train/landermt/delta.safetensors", "pairs/en-fr/report.json", "report.json", "report.md"] {
        assert!(run.join(file).exists(), "{file} is missing:\n{first}");
    }
    assert!(!run.join("pairs/en-de").exists() && !first.contains("en-de/"), "--pairs en-fr ran en-de:\n{first}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("Not evaluated yet: en-de"), "{md}");

    // The second pair: only its steps run; en-fr's and the shared score stage are current.
    let second = pipeline(&[]);
    for step in ["en-fr/probe", "score", "en-fr/route", "en-fr/train:landermt", "en-fr/eval"] {
        assert!(second.lines().any(|l| l.contains(&format!(" {step} ")) && l.contains("current, skipped")), "{step} ran again:\n{second}");
    }
    for step in ["en-de/probe", "en-de/route", "en-de/train:landermt", "en-de/eval", "report"] {
        assert!(second.lines().any(|l| l.contains(&format!(" {step} ")) && l.contains("done")), "{step} did not run:\n{second}");
    }
    // Table 1: into English first, then out of it; a mean where every column has a score.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("| system | fr-en | de-en | en-fr | en-de | mean |"), "{md}");
    let row = md.lines().find(|l| l.starts_with("| landermt |")).unwrap_or_else(|| panic!("{md}"));
    assert_eq!(row.matches(" | ").count(), 5, "{row}");
    assert!(!row.contains('–'), "every cell and the mean are filled: {row}");
    let pair_report = std::fs::read_to_string(run.join("pairs/en-de/report.md")).unwrap();
    assert!(pair_report.contains("| landermt | de-en | flores |"), "{pair_report}");
    // Transfer across pairs: landermt trained on en-fr decoded on de-en, the baseline not;
    // no per-direction training as in a one-pair run.
    assert!(run.join("pairs/en-fr/eval/landermt/flores.de-en.hyp").exists() && !run.join("pairs/en-fr/eval/none/flores.de-en.hyp").exists());
    assert!(!run.join("pairs/en-fr/train/landermt@en-fr").exists());
    assert!(md.contains("## Transfer across pairs: `landermt`"), "{md}");
    // The transfer matrix's BLEU, then the same rows' off-target rates.
    let transfer = &md[md.find("## Transfer across pairs").unwrap()..];
    let (bleu, off_target) = transfer.split_once("Off-target rate of the same systems").unwrap_or_else(|| panic!("no off-target matrix:\n{md}"));
    for row in ["| none |", "| landermt on en-fr |", "| landermt on en-de |"] {
        let line = off_target.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row} missing from the off-target matrix:\n{md}"));
        assert_eq!(line.matches(" | ").count(), 4, "a rate per direction: {line}");
        let line = bleu.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row} missing:\n{md}"));
        assert!(!line.contains('–'), "{line}");
        // Each trained row gives its gain over the baseline's row, cell by cell.
        assert_eq!(line.matches(" (+").count() + line.matches(" (-").count(), if row == "| none |" { 0 } else { 4 }, "{line}");
    }
    // Forgetting: a row per pair and system, a column per language, the change against none.
    assert!(md.contains("| pair | system | de |"), "{md}");
    let forgetting = md.lines().find(|l| l.starts_with("| en-de | landermt |")).unwrap_or_else(|| panic!("{md}"));
    assert!(forgetting.contains(" (+") || forgetting.contains(" (-"), "{forgetting}");
    for figure in ["transfer-pairs-flores.svg", "transfer-pairs-flores-gain.svg", "pairs-delta.svg", "pairs-activation.svg"] {
        assert!(run.join("figures").join(figure).exists(), "{figure}");
    }

    // The paper's config plans per pair without its model or GPU.
    let plan = xtask(&["pipeline", "--config", "configs/paper.toml", "--dry-run"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("en-zh/train:landermt") && plan.contains("pairs: en-ar, en-de, en-fr, en-it, en-zh"), "{plan}");
    // A named model not in the cache: the dry run says its kept outputs cannot be checked yet.
    let empty = tempfile::tempdir().unwrap();
    let out = common::xtask_command(&["pipeline", "--config", "configs/en-fr.toml", "--dry-run"]).env("LANDERMT_CACHE", empty.path()).output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && plan.contains("gemma-3-270m is not in the model cache") && plan.contains("decode:lora"), "{plan}");
    // Its output piped into a reader that closes early (`| head -1`): no panic.
    let mut child = common::xtask_command(&["pipeline", "--config", "configs/paper.toml", "--dry-run"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // Run for real, it is refused before any step for what this machine lacks.
    let out = xtask(&["pipeline", "--config", "configs/paper.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("configs/paper.toml: [model] path: /models/Llama-2-7b-hf does not exist"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("running"), "a step started");
}

/// A run folder moved without its weights (crate `landermt_pipeline::kept`): training records
/// each delta's SHA-256, and a system whose delta is gone but recorded, with its outputs
/// decoded, is not trained again; the eval stage rebuilds the report from the kept files. When
/// the decoding settings change, the system is trained again.
#[test]
fn a_run_kept_without_its_deltas_resumes_without_retraining() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = quick_config(tmp.path(), &run, &[]);
    let pipeline = |extra: &[&str]| common::pipeline(&cfg, extra);
    pipeline(&[]);
    let report = |what: &str| -> serde_json::Value { serde_json::from_slice::<serde_json::Value>(&std::fs::read(run.join("report.json")).unwrap()).unwrap()[what].clone() };
    let (rows, lm, systems) = (report("rows"), report("lm_loss"), report("systems"));
    let trained = ["landermt", "landermt@en-fr", "landermt@fr-en"];
    for system in trained {
        let dir = run.join("train").join(system);
        let out = std::process::Command::new("sha256sum").arg(dir.join("delta.safetensors")).output().unwrap();
        let sha = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(dir.join("delta.sha256")).unwrap().trim(), sha, "{system}");
        std::fs::remove_file(dir.join("delta.safetensors")).unwrap();
        let _ = std::fs::remove_file(dir.join("checkpoint.safetensors"));
    }
    std::fs::remove_file(run.join("report.json")).unwrap();
    let again = pipeline(&[]);
    for step in ["train:landermt", "train:landermt@en-fr", "train:landermt@fr-en"] {
        assert!(again.lines().any(|l| l.contains(step) && l.contains("current, skipped")), "{step} was trained again:\n{again}");
    }
    assert!(again.lines().any(|l| l.contains("eval") && l.contains("done")), "{again}");
    assert_eq!(report("rows"), rows);
    assert_eq!(report("lm_loss"), lm);
    assert_eq!(report("systems"), systems);
    assert!(!run.join("train/landermt/delta.safetensors").exists());

    // Other decoding settings need the weights: the systems train again, then decode.
    let edited = std::fs::read_to_string(&cfg).unwrap().replace("max_new_tokens = 8", "max_new_tokens = 6");
    std::fs::write(&cfg, edited).unwrap();
    let plan = pipeline(&["--dry-run"]);
    assert!(plan.lines().any(|l| l.contains("train:landermt") && l.trim_end().ends_with("run")), "{plan}");
    pipeline(&[]);
    for system in trained {
        assert!(run.join("train").join(system).join("delta.safetensors").exists(), "{system}");
    }
    assert_ne!(report("rows"), serde_json::Value::Null);
}
