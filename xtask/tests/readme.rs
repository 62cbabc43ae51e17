//! The README's example commands on `configs/quick.toml` run as written (issue 44): each
//! `cargo xtask …` line of a code block that names the quick config or its run folder, in
//! order, with only the config, the run folder and the output folder moved into a scratch
//! folder. A broken example fails here.

mod common;

use common::{quick_config, root, xtask};

#[test]
fn the_readmes_quick_commands_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (mut in_block, mut commands) = (false, Vec::new());
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let command = line.split(" #").next().unwrap_or_default().trim();
        if in_block && command.starts_with("cargo xtask ") && (command.contains("configs/quick.toml") || command.contains("runs/quick")) {
            commands.push(command.to_string());
        }
    }
    assert!(commands.iter().filter(|c| c.contains(" export ")).count() >= 3 && commands.len() >= 8, "{commands:?}");
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = quick_config(tmp.path(), &run, &[]);
    let merged = tmp.path().join("merged");
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().skip(2).collect();
        let args: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, &a)| match a {
                "configs/quick.toml" => cfg.display().to_string(),
                "runs/quick" => run.display().to_string(),
                // Every export's output folder goes into the scratch folder.
                _ if i > 0 && words[i - 1] == "--out" => tmp.path().join(a).display().to_string(),
                other => other.to_string(),
            })
            .collect();
        let out = xtask(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "`{command}` failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(merged.join("model.safetensors").exists() && run.join("figures").exists());
    assert!(tmp.path().join("routed/modeling_landermt.py").exists() && tmp.path().join("adapter/adapter_config.json").exists());
}
