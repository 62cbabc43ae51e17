//! The committed bench sittings, read back for the speed figures the pages quote.
//!
//! `cargo xtask bench --vs-torch --out results/bench/NAME` writes a sitting's `results.json`:
//! each workload's work and seconds on our side and PyTorch's, and the machine it ran on. A
//! sitting is committed when a page quotes it; [`table`] and [`translate_summary`] are what
//! the claims check regenerates from them, so a speed figure cannot outlive its measurement.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use itertools::Itertools;
use serde::{Deserialize, Serialize};

/// Where the committed sittings are, one folder each, from the project root.
pub const BENCH_DIR: &str = "results/bench";

/// The workloads in the order BENCHMARKS.md's tables give them.
const WORKLOADS: [&str; 10] = ["gemm", "prefill", "decode-b1", "decode-b8", "translate", "train-full", "train-lora", "train-landermt", "probe", "score"];

/// The model whose figures the pages quote.
const MODEL: &str = "gemma";

#[derive(Deserialize)]
struct SittingFile {
    machine: Option<Machine>,
    threads: usize,
    gemm_kernel: GemmKernel,
    gemm: Option<Sides>,
    rows: Vec<Row>,
}

/// Which machine a sitting ran on, when, and from which commit (`results.json`'s `machine`,
/// written by `cargo xtask bench`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Machine {
    /// `/proc/cpuinfo`'s model name (the architecture where there is none).
    pub cpu: String,
    /// UTC, `YYYY-MM-DD`.
    pub date: String,
    /// `git describe --always --dirty` of the repository, where it can be read.
    pub commit: Option<String>,
}

/// `landermt_model::blas::Kernel` as written: its tag (`mkl`, `openblas`, `rust`) is the name.
#[derive(Deserialize)]
struct GemmKernel {
    kernel: String,
}

#[derive(Deserialize)]
struct Sides {
    landermt: Side,
    torch: Option<Side>,
}

#[derive(Deserialize)]
struct Row {
    model: String,
    #[serde(flatten)]
    sides: Sides,
}

#[derive(Deserialize)]
struct Side {
    workload: String,
    count: f64,
    seconds: f64,
}

impl Side {
    fn rate(&self) -> f64 {
        self.count / self.seconds
    }
}

/// One committed sitting: where and when it ran, and each workload's rate ratio, ours ÷
/// PyTorch's.
pub struct Sitting {
    /// Its folder under [`BENCH_DIR`].
    pub name: String,
    pub cpu: String,
    pub date: String,
    pub threads: usize,
    /// The f32 GEMM our side ran on: `mkl`, `openblas` or `rust`.
    pub gemm: String,
    pub ratios: Vec<(String, f64)>,
}

impl Sitting {
    pub fn ratio(&self, workload: &str) -> Option<f64> {
        self.ratios.iter().find(|(w, _)| w == workload).map(|&(_, r)| r)
    }
}

/// Every sitting under `root`'s [`BENCH_DIR`], oldest first; errors name the file that is not a
/// sitting or does not say which machine it ran on.
pub fn read(root: &Path) -> Result<Vec<Sitting>> {
    let dir = root.join(BENCH_DIR);
    let mut sittings = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let folder = entry?.path();
        let path = folder.join("results.json");
        if !path.is_file() {
            continue;
        }
        let file: SittingFile = crate::claims::read_json(&path, "a bench sitting's results.json")?;
        let machine = file.machine.with_context(|| format!("{}: no `machine` (sittings written before 2026-12-07 do not say where they ran)", path.display()))?;
        let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        sittings.push(sitting(name, machine, file.threads, file.gemm_kernel.kernel, file.gemm.iter().chain(file.rows.iter().filter(|r| r.model == MODEL).map(|r| &r.sides))));
    }
    sittings.sort_by(|a, b| (&a.date, &a.name).cmp(&(&b.date, &b.name)));
    Ok(sittings)
}

fn sitting<'a>(name: String, machine: Machine, threads: usize, gemm: String, sides: impl Iterator<Item = &'a Sides>) -> Sitting {
    let ratios = sides.filter_map(|s| s.torch.as_ref().map(|t| (s.landermt.workload.clone(), s.landermt.rate() / t.rate()))).collect();
    Sitting { name, cpu: machine.cpu, date: machine.date, threads, gemm, ratios }
}

/// The sittings as one table: a row each, a column per workload any of them ran.
pub fn table(sittings: &[Sitting]) -> String {
    let columns: Vec<&str> = WORKLOADS.into_iter().filter(|w| sittings.iter().any(|s| s.ratio(w).is_some())).collect();
    let mut md = String::from("Rate ratios, ours ÷ PyTorch's (above 1: we are faster), Gemma 3 270M, one row per committed sitting.\n\n");
    let _ = writeln!(md, "| sitting | date | CPU | threads | our GEMM | {} |", columns.iter().join(" | "));
    let _ = writeln!(md, "|---|---|---|---:|---|{}", "---:|".repeat(columns.len()));
    for s in sittings {
        let cells: Vec<String> = columns.iter().map(|w| s.ratio(w).map_or("–".into(), |r| format!("{r:.2}×"))).collect();
        let _ = writeln!(md, "| `{}` | {} | {} | {} | {} | {} |", s.name, s.date, s.cpu, s.threads, s.gemm, cells.join(" | "));
    }
    md
}

/// `translate`'s ratio over the sittings, per CPU: "batched translation at 2.09–2.15× PyTorch's
/// rate in 3 sittings on CPU A, and 2.30× in 1 sitting on CPU B".
pub fn translate_summary(sittings: &[Sitting]) -> String {
    let by_cpu = sittings.iter().filter_map(|s| s.ratio("translate").map(|r| (s.cpu.as_str(), r))).into_group_map();
    let parts = by_cpu.into_iter().sorted_by_key(|(cpu, _)| *cpu).enumerate().map(|(i, (cpu, rs))| {
        let (lo, hi) = rs.iter().copied().minmax().into_option().unwrap_or_default();
        let range = if format!("{lo:.2}") == format!("{hi:.2}") { format!("{lo:.2}×") } else { format!("{lo:.2}–{hi:.2}×") };
        let of = if i == 0 { " PyTorch's rate" } else { "" };
        let n = if rs.len() == 1 { "1 sitting".to_string() } else { format!("{} sittings", rs.len()) };
        format!("{range}{of} in {n} on {cpu}")
    });
    format!("batched translation at {}", parts.collect::<Vec<_>>().join(", and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(workload: &str, count: f64, seconds: f64) -> String {
        format!(r#"{{"workload": "{workload}", "side": "x", "count": {count}, "unit": "u", "seconds": {seconds}, "flops": 1, "peak_rss_mb": 1}}"#)
    }

    fn write_sitting(root: &Path, name: &str, cpu: &str, translate: (f64, f64)) {
        let dir = root.join(BENCH_DIR).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let json = format!(
            r#"{{"machine": {{"cpu": "{cpu}", "date": "2026-12-08", "commit": null}}, "threads": 2, "gemm_kernel": {{"kernel": "rust"}},
              "gemm": {{"landermt": {}, "torch": {}}},
              "rows": [{{"model": "gemma", "landermt": {}, "torch": {}}}, {{"model": "llama", "landermt": {}, "torch": null}}], "llamacpp": []}}"#,
            side("gemm", 10.0, 1.0),
            side("gemm", 10.0, 2.0),
            side("translate", 100.0, translate.0),
            side("translate", 100.0, translate.1),
            side("prefill", 1.0, 1.0)
        );
        std::fs::write(dir.join("results.json"), json).unwrap();
    }

    #[test]
    fn ratios_are_rates_ours_over_theirs_and_the_summary_spans_each_cpu() {
        let root = tempfile::tempdir().unwrap();
        write_sitting(root.path(), "b", "CPU A", (25.0, 50.0));
        write_sitting(root.path(), "a", "CPU A", (20.0, 50.0));
        write_sitting(root.path(), "c", "CPU B", (40.0, 60.0));
        let sittings = read(root.path()).unwrap();
        assert_eq!(sittings.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        // 100 lines in 20 s against 100 in 50 s: 2.5 times PyTorch's rate.
        assert_eq!(sittings[0].ratio("translate"), Some(2.5));
        assert_eq!(sittings[0].ratio("gemm"), Some(2.0));
        // llama's rows and sides without PyTorch are not ratios.
        assert_eq!(sittings[0].ratio("prefill"), None);
        assert_eq!(translate_summary(&sittings), "batched translation at 2.00–2.50× PyTorch's rate in 2 sittings on CPU A, and 1.50× in 1 sitting on CPU B");
        let md = table(&sittings);
        assert!(md.contains("| `a` | 2026-12-08 | CPU A | 2 | rust | 2.00× | 2.50× |"), "{md}");
    }

    #[test]
    fn a_sitting_without_its_machine_is_an_error_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        write_sitting(root.path(), "a", "CPU A", (20.0, 50.0));
        let path = root.path().join(BENCH_DIR).join("a/results.json");
        let text = std::fs::read_to_string(&path).unwrap().replace(r#""machine": {"cpu": "CPU A", "date": "2026-12-08", "commit": null}, "#, "");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", read(root.path()).err().unwrap());
        assert!(err.contains("a/results.json: no `machine`"), "{err}");
    }
}
