//! `cargo xtask device-check`: what a GPU machine can run, in one table.
//!
//! For every GPU backend compiled in (`cuda`, `wgpu`) and present on the machine:
//! - parity: each tiny fixture's hidden states and logits against transformers' reference
//!   tensors (`tests/fixtures/hf-tiny/*/reference.safetensors`) and its greedy tokens, and, where
//!   Gemma 3 270M is in the model cache, its logits and greedy tokens against `flex`;
//! - `bench` on the GPU: prefill, decode-b1, train-landermt and train-full, on the random
//!   LLaMA-shaped model (written on the spot, so nothing large has to travel) and on Gemma where
//!   cached, beside PyTorch on CUDA where `python3` has a torch that sees the GPU.
//!
//! It reads only files of this repository and the model cache, so a prebuilt binary runs it on a
//! machine that reaches no registry (see BENCHMARKS.md, "GPU backends").

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use burn::tensor::{Device, Tensor};
use landermt_model::generate::{GreedyOptions, greedy};
use landermt_model::{Backend, Batch, LanguageModel};
use safetensors::{Dtype, SafeTensors};

use crate::bench::{self, BenchArgs, BenchModel, Workload, repo_file};

/// Largest |difference| from transformers' f32 values allowed on a GPU backend (the tests'
/// wgpu limit): GPU kernels reduce in tiles, in another order than PyTorch's CPU kernels.
const TINY_LIMIT: f32 = 1e-3;
/// Gemma 3 270M's logits against flex: 262k-way logits of magnitude ~30, summed over 18 layers.
const GEMMA_LIMIT: f32 = 2e-2;

pub struct Options {
    pub python: String,
    pub out: PathBuf,
    /// Parity only, no timing.
    pub no_bench: bool,
}

/// One line of the final table.
struct Row {
    backend: String,
    check: String,
    measured: String,
    limit: String,
    ok: Option<bool>,
}

impl Row {
    fn new(backend: Backend, check: impl Into<String>, measured: impl Into<String>, limit: impl Into<String>, ok: Option<bool>) -> Self {
        Self { backend: backend.name().into(), check: check.into(), measured: measured.into(), limit: limit.into(), ok }
    }
}

pub fn run(opts: &Options) -> Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    let mut rows = Vec::new();
    let mut present = Vec::new();
    for backend in [Backend::Cuda, Backend::Wgpu] {
        match backend.device() {
            Ok(device) => present.push((backend, device)),
            Err(e) => rows.push(Row::new(backend, "device", e.to_string(), "", None)),
        }
    }
    // Every backend's parity before any timing: a run stopped at its time limit loses timings,
    // not correctness. The table is written after each step for the same reason.
    for (backend, device) in &present {
        eprintln!("device-check: parity on {backend}");
        parity(*backend, device, &mut rows);
        write_table(&rows, opts)?;
    }
    for (backend, _) in present.iter().filter(|_| !opts.no_bench) {
        eprintln!("device-check: bench on {backend}");
        timings(*backend, opts, &mut rows);
        write_table(&rows, opts)?;
    }
    println!("{}", table(&rows));
    match rows.iter().filter(|r| r.ok == Some(false)).count() {
        0 => Ok(()),
        n => anyhow::bail!("{n} device check(s) failed (table above, {})", opts.out.join("device-check.md").display()),
    }
}

fn write_table(rows: &[Row], opts: &Options) -> Result<()> {
    let table = table(rows);
    Ok(landermt_model::atomic::write_atomic(&opts.out.join("device-check.md"), |w| w.write_all(table.as_bytes()))?)
}

/// The tiny fixtures against transformers, then Gemma against flex where cached.
fn parity(backend: Backend, device: &Device, rows: &mut Vec<Row>) {
    for name in ["bloom-tiny", "llama-tiny", "gemma3-tiny", "qwen2-tiny"] {
        let dir = repo_file("tests/fixtures/hf-tiny").join(name);
        match guarded(|| tiny_parity(&dir, device)) {
            Ok((diff, greedy_same, prompts)) => {
                rows.push(Row::new(backend, format!("{name}: hidden states and logits"), format!("{diff:.1e}"), format!("≤ {TINY_LIMIT:.0e}"), Some(diff <= TINY_LIMIT)));
                rows.push(Row::new(backend, format!("{name}: greedy tokens, KV cache"), format!("{greedy_same}/{prompts} prompts"), "all", Some(greedy_same == prompts)));
            }
            Err(e) => rows.push(Row::new(backend, name, format!("error: {e:#}"), "", Some(false))),
        }
    }
    let gemma = gemma_model();
    let label = gemma.label();
    match guarded(|| gemma_parity(&bench::model_path(gemma, &models_dir())?, device)) {
        Ok(g) => {
            rows.push(Row::new(backend, format!("{label}: logits against flex"), format!("{:.1e}", g.logit_diff), format!("≤ {GEMMA_LIMIT:.0e}"), Some(g.logit_diff <= GEMMA_LIMIT)));
            let picks = format!("{}/{} as flex, {} near-ties", g.agree, g.picks, g.ties);
            rows.push(Row::new(backend, format!("{label}: greedy picks on flex's tokens"), picks, format!("others within {TIE:.0e} of flex's pick"), Some(g.agree + g.ties == g.picks)));
            rows.push(Row::new(backend, format!("{label}: 32 greedy tokens decoded freely"), if g.free_run_same { "same as flex" } else { "different" }, "", None));
        }
        Err(e) => rows.push(Row::new(backend, label, format!("error: {e:#}"), "", Some(false))),
    }
}

/// Gemma 3 270M where the model cache has it, else a model of its shape with random weights:
/// the GGUF (253 MB) does not fit in what travels to a device machine (64 MiB).
fn gemma_model() -> BenchModel {
    if landermt_model::cache::known("gemma-3-270m").is_some_and(|m| m.is_cached()) { BenchModel::Gemma } else { BenchModel::GemmaShaped }
}

/// The random-weight models, written once per machine (about 1 GB each) outside what comes back.
fn models_dir() -> PathBuf {
    std::env::temp_dir().join("landermt-device-check-models")
}

/// A check's result, with a panic inside it (a kernel the device refuses, say) as an error: one
/// failing check must not hide the others.
fn guarded<T>(check: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        // The first line says what failed; the line after the last "Caused by:" (Burn's cause
        // chain) says why.
        let lines: Vec<&str> = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let cause = lines.iter().rposition(|l| *l == "Caused by:").and_then(|i| lines.get(i + 1));
        let why = cause.map_or(String::new(), |c| format!(" … {c}"));
        Err(anyhow::anyhow!("panicked: {}{why}", lines.first().unwrap_or(&"")))
    })
}

fn floats(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The largest difference over every prompt's hidden states and logits, and on how many prompts
/// greedy decoding gives the reference's tokens.
fn tiny_parity(dir: &Path, device: &Device) -> Result<(f32, usize, usize)> {
    let model = LanguageModel::load(dir, device)?;
    let bytes = std::fs::read(dir.join("reference.safetensors"))?;
    let reference = SafeTensors::deserialize(&bytes)?;
    let tensor = |name: &str| -> Result<(Dtype, Vec<u8>)> {
        let view = reference.tensor(name)?;
        Ok((view.dtype(), view.data().to_vec()))
    };
    let f32s = |name: &str| -> Result<Vec<f32>> { Ok(tensor(name)?.1.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()) };
    let ids = |name: &str| -> Result<Vec<u32>> { Ok(tensor(name)?.1.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32).collect()) };
    let (mut worst, mut same, mut k) = (0f32, 0, 0);
    while reference.tensor(&format!("ids_{k}")).is_ok() {
        let prompt = ids(&format!("ids_{k}"))?;
        let states = model.net.hidden_states(&Batch::single(&prompt));
        let last = states.last().expect("L+1 states").clone();
        let logits = floats(model.net.logits(last));
        let hidden: Vec<f32> = states.into_iter().flat_map(floats).collect();
        worst = worst.max(max_diff(&hidden, &f32s(&format!("hidden_{k}"))?)).max(max_diff(&logits, &f32s(&format!("logits_{k}"))?));
        let want = ids(&format!("greedy_{k}"))?;
        let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: want.len(), stop_ids: vec![], pad_id: 0 };
        same += usize::from(greedy(&model.net, std::slice::from_ref(&prompt), &opts)[0] == want);
        k += 1;
    }
    Ok((worst, same, k))
}

/// A greedy pick may differ from flex's only where flex's own logits nearly tie: random weights
/// make near-uniform logits, whose top two can be closer than two reduction orders' difference.
const TIE: f32 = 1e-4;

/// Gemma on a GPU against flex.
struct GemmaParity {
    /// Largest |difference| of the logits at every position of two sentences, each followed
    /// by flex's greedy tokens.
    logit_diff: f32,
    /// Of flex's 32 greedy tokens per sentence, fed to both (teacher forcing): how many the
    /// GPU also picks, and how many it picks otherwise where flex's logits tie within [`TIE`].
    agree: usize,
    ties: usize,
    picks: usize,
    /// Whether decoding freely on the GPU gives flex's tokens (one near-tie flips the rest).
    free_run_same: bool,
}

fn gemma_parity(path: &Path, device: &Device) -> Result<GemmaParity> {
    let texts = ["Translate this from English to French:\nEnglish: The cat sleeps on the sofa.\nFrench:", "The history of the region goes back"];
    let (gpu, cpu) = (LanguageModel::load(path, device)?, LanguageModel::load(path, &landermt_pipeline::gemm_device(Backend::Flex, &Default::default(), Some(path))?)?);
    let greedy_of =
        |m: &LanguageModel, ids: &[u32]| greedy(&m.net, &[ids.to_vec()], &GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: 32, stop_ids: vec![], pad_id: 0 }).remove(0);
    let mut out = GemmaParity { logit_diff: 0.0, agree: 0, ties: 0, picks: 0, free_run_same: true };
    for text in texts {
        let prompt = cpu.encode(text)?;
        let reference = greedy_of(&cpu, &prompt);
        out.free_run_same &= greedy_of(&gpu, &prompt) == reference;
        // Every position's logits over the prompt and flex's tokens but the last.
        let seq: Vec<u32> = prompt.iter().chain(&reference[..reference.len() - 1]).copied().collect();
        let all = |m: &LanguageModel| floats(m.net.logits(m.net.forward(&Batch::single(&seq), None, &mut landermt_model::Taps::none())));
        let (g, c) = (all(&gpu), all(&cpu));
        let vocab = g.len() / seq.len();
        out.logit_diff = out.logit_diff.max(max_diff(&g, &c));
        for (i, &want) in reference.iter().enumerate() {
            let at = (prompt.len() - 1 + i) * vocab;
            let (g, c) = (&g[at..at + vocab], &c[at..at + vocab]);
            let pick = (0..vocab).max_by(|&a, &b| g[a].total_cmp(&g[b])).expect("a vocabulary") as u32;
            out.picks += 1;
            if pick == want {
                out.agree += 1;
            } else if c[want as usize] - c[pick as usize] <= TIE {
                out.ties += 1;
            }
        }
    }
    Ok(out)
}

/// Whether `python` has a torch that sees a CUDA GPU.
fn torch_sees_cuda(python: &str) -> bool {
    Command::new(python).args(["-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"]).status().is_ok_and(|s| s.success())
}

fn timings(backend: Backend, opts: &Options, rows: &mut Vec<Row>) {
    let args = BenchArgs {
        models: vec![BenchModel::Llama, gemma_model()],
        models_dir: models_dir(),
        workloads: vec![Workload::Gemm, Workload::Prefill, Workload::DecodeB1, Workload::TrainLandermt, Workload::TrainFull],
        vs_torch: backend == Backend::Cuda && torch_sees_cuda(&opts.python),
        python: opts.python.clone(),
        out: opts.out.join(format!("bench-{backend}")),
        backend,
        torch_device: "cuda".into(),
        dtype: landermt_model::WeightDtype::F32,
        llamacpp: None,
    };
    match bench::bench(&args) {
        Ok(results) => {
            if let Some((ours, theirs)) = results.gemm {
                rows.push(Row::new(backend, format!("f32 GEMM {}, GFLOP/s", ours.note), rate_beside_torch(&ours, theirs.as_ref()), "", None));
            }
            for (model, ours, theirs) in results.rows {
                rows.push(Row::new(backend, format!("{}: {} {}/s", model.label(), ours.workload, ours.unit), rate_beside_torch(&ours, theirs.as_ref()), "", None));
            }
        }
        Err(e) => rows.push(Row::new(backend, "bench", format!("error: {e:#}"), "", Some(false))),
    }
}

/// Our rate, with PyTorch CUDA's and the ratio where it ran (GEMM's rate is in GFLOP/s); then
/// the device memory each side's allocator reserved.
fn rate_beside_torch(ours: &bench::Measured, theirs: Option<&bench::Measured>) -> String {
    let vs = theirs.map_or(String::new(), |t| format!(" (PyTorch CUDA {:.0}, {:.2}×)", t.rate(), ours.rate() / t.rate()));
    let memory = match (ours.peak_device_mb, theirs.and_then(|t| t.peak_device_mb)) {
        (Some(o), Some(t)) => format!("; device memory {o:.0} MB (PyTorch {t:.0} MB)"),
        (Some(o), None) => format!("; device memory {o:.0} MB"),
        _ => String::new(),
    };
    format!("{:.0}{vs}{memory}", ours.rate())
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from("| backend | check | measured | limit | result |\n|---|---|---|---|---|\n");
    for r in rows {
        let result = match r.ok {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "–",
        };
        s += &format!("| {} | {} | {} | {} | {result} |\n", r.backend, r.check, r.measured.replace('\n', " "), r.limit);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_parity_feeds_flex_tokens_and_counts_every_pick() {
        let dir = repo_file("tests/fixtures/hf-tiny/gemma3-tiny");
        let flex = landermt_pipeline::gemm_device(Backend::Flex, &Default::default(), None).unwrap();
        let g = gemma_parity(&dir, &flex).unwrap();
        // The same backend on both sides: every teacher-forced pick is flex's own greedy token.
        assert_eq!((g.logit_diff, g.agree, g.ties, g.picks, g.free_run_same), (0.0, 64, 0, 64, true));
    }
}
