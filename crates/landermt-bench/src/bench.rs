//! `cargo xtask bench`: throughput and peak memory of the workloads a user compares us on —
//! prefill, KV-cache decoding, training per method, probe and score — on Gemma 3 270M and on a
//! LLaMA-shaped model of similar size with random weights, optionally side by side with the
//! same workloads in PyTorch (`bench/torch_reference.py`, `--vs-torch`).
//!
//! Each workload runs in a child process (`cargo xtask bench-one`), so its peak resident
//! memory is its own. The parent writes the inputs both sides use (token ids, the LANDeRMT
//! update set, the model's dimensions) to `target/bench/inputs-{model}.json`, collects one JSON
//! line per workload and side, and prints a table of rates, their ratio, and each workload's
//! achieved FLOP/s as a fraction of this machine's measured f32 GEMM throughput.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::{Distribution, Tensor};
use landermt_model::generate::{GreedyOptions, greedy};
use landermt_model::nn::CarMode;
use landermt_model::{Backend, Batch, KvCache, LanguageModel, ModelConfig, Site, Taps, WeightDtype};
use landermt_pipeline::sittings::Machine;
use serde::{Deserialize, Serialize};

/// The two models of the issue: the real Gemma 3 270M, and a LLaMA of similar size with
/// random weights (written once under `target/bench/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchModel {
    Gemma,
    Llama,
    /// Gemma 3 270M's shape with random weights, for machines without the model (`device-check`).
    GemmaShaped,
}

impl BenchModel {
    pub const ALL: [BenchModel; 2] = [BenchModel::Gemma, BenchModel::Llama];

    pub fn label(self) -> &'static str {
        match self {
            BenchModel::Gemma => "Gemma 3 270M",
            BenchModel::Llama => "LLaMA-shaped 250M (random)",
            BenchModel::GemmaShaped => "Gemma-3-270M-shaped (random)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// f32 matmul of two n×n matrices: the machine's reference throughput.
    Gemm,
    /// One forward pass over a batch, filling the KV cache, with the last position's logits.
    Prefill,
    /// Greedy decoding with the KV cache, one sequence.
    DecodeB1,
    /// Greedy decoding with the KV cache, a batch.
    DecodeB8,
    TrainLandermt,
    TrainLora,
    TrainFull,
    /// Stage 1: per-block mean activations, no autodiff.
    Probe,
    /// Stage 2: Taylor awareness (forward and backward with probes at every scored site).
    Score,
    /// Stage 5's decoding: FLORES lines en→fr with the eval prompt, greedy in batches, stopped
    /// per row at EOS or a newline (real weights: Gemma only).
    Translate,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Gemm,
        Workload::Prefill,
        Workload::DecodeB1,
        Workload::DecodeB8,
        Workload::TrainLandermt,
        Workload::TrainLora,
        Workload::TrainFull,
        Workload::Probe,
        Workload::Score,
        Workload::Translate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Gemm => "gemm",
            Workload::Prefill => "prefill",
            Workload::DecodeB1 => "decode-b1",
            Workload::DecodeB8 => "decode-b8",
            Workload::TrainLandermt => "train-landermt",
            Workload::TrainLora => "train-lora",
            Workload::TrainFull => "train-full",
            Workload::Probe => "probe",
            Workload::Score => "score",
            Workload::Translate => "translate",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Gemm => "GFLOP",
            Workload::Probe | Workload::Score | Workload::Translate => "sentences",
            _ => "tokens",
        }
    }
}

/// Sizes of the workloads (the issue's: batch 8 × 128 tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shapes {
    pub batch: usize,
    pub seq_len: usize,
    /// Trailing tokens of each training sequence that are the target (the loss's positions).
    pub target_len: usize,
    pub train_steps: usize,
    pub prefill_runs: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub probe_sentences: usize,
    pub score_sentences: usize,
    pub sentence_len: usize,
    pub gemm_n: usize,
    pub lora_rank: usize,
}

impl Shapes {
    pub const ISSUE: Shapes = Shapes {
        batch: 8,
        seq_len: 128,
        target_len: 64,
        train_steps: 3,
        prefill_runs: 3,
        prompt_len: 16,
        new_tokens: 64,
        probe_sentences: 32,
        score_sentences: 16,
        sentence_len: 64,
        gemm_n: 2048,
        lora_rank: 8,
    };
    /// For tests of the plumbing on tiny models.
    #[cfg(test)]
    pub const TINY: Shapes = Shapes {
        batch: 2,
        seq_len: 12,
        target_len: 4,
        train_steps: 1,
        prefill_runs: 1,
        prompt_len: 4,
        new_tokens: 3,
        probe_sentences: 4,
        score_sentences: 2,
        sentence_len: 6,
        gemm_n: 64,
        lora_rank: 2,
    };
}

/// The dimensions PyTorch needs to build the same architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub tie_word_embeddings: bool,
    pub sliding_window: Option<usize>,
    pub parameters: usize,
}

/// The units `train-landermt` updates in one layer: output units of q, k, v, o and the FFN's
/// intermediate units (G ∪ S of the routed layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerUnits {
    pub layer: usize,
    pub q: Vec<usize>,
    pub k: Vec<usize>,
    pub v: Vec<usize>,
    pub o: Vec<usize>,
    /// The FFN's partition for the router: general, specific, other.
    pub general: Vec<usize>,
    pub specific: Vec<usize>,
    pub other: Vec<usize>,
}

impl LayerUnits {
    /// The FFN units that train: G ∪ S.
    pub fn ffn(&self) -> Vec<usize> {
        let mut ffn: Vec<usize> = self.general.iter().chain(&self.specific).copied().collect();
        ffn.sort_unstable();
        ffn
    }
}

/// Everything both sides read: the same token ids, update set and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub model: ModelSpec,
    pub shapes: Shapes,
    /// `batch` sequences of `seq_len` ids.
    pub train_ids: Vec<Vec<u32>>,
    /// `batch` prompts of `prompt_len` ids.
    pub prompt_ids: Vec<Vec<u32>>,
    /// `probe_sentences` sequences of `sentence_len` ids (score uses the first `score_sentences`).
    pub sentences: Vec<Vec<u32>>,
    pub units: Vec<LayerUnits>,
    /// The `translate` workload's sentences, for models with real weights and a tokenizer.
    #[serde(default)]
    pub translate: Option<TranslateInputs>,
}

/// What both sides of `translate` decode: the eval stage's prompts as text (each side tokenizes
/// them with the model's tokenizer), in batches of `batch` after sorting by prompt length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslateInputs {
    /// The GGUF file both sides load.
    pub model_file: PathBuf,
    pub sources: Vec<String>,
    pub prompts: Vec<String>,
    pub batch: usize,
    pub max_new_tokens: usize,
}

/// `translate`'s sizes (issue 14): FLORES-200 devtest lines 1–100, en→fr, batch 16, 64 tokens.
const TRANSLATE_LINES: usize = 100;

/// The `translate` inputs for `model_file`: the first FLORES devtest lines with the default
/// template's prompts.
pub fn translate_inputs(model_file: &Path, lines: usize, batch: usize, max_new_tokens: usize) -> Result<TranslateInputs> {
    let direction: landermt_data::Direction = "en-fr".parse().map_err(anyhow::Error::msg)?;
    let dir = repo_file("data/flores200-devtest");
    let source = landermt_data::ParallelSource::Flores { dir, first: 1, last: lines };
    let pairs = landermt_data::corpus::read_parallel(&source, direction).context("reading FLORES for the translate workload")?;
    let template = landermt_data::prompt::Template::default();
    let prompts = pairs.iter().map(|p| landermt_eval::decode::prompt(&template, direction, &p.src, &[])).collect();
    Ok(TranslateInputs { model_file: model_file.into(), sources: pairs.into_iter().map(|p| p.src).collect(), prompts, batch, max_new_tokens })
}

/// One workload's measurement on one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub workload: String,
    pub side: String,
    /// Work done in the timed part, in `unit`s.
    pub count: f64,
    pub unit: String,
    pub seconds: f64,
    /// Nominal floating-point operations of the timed part (the same formula for both sides).
    pub flops: f64,
    pub peak_rss_mb: f64,
    /// On a GPU backend, the device memory its allocator reserved, in MiB: ours read from
    /// cubecl's pools at the end of the workload (they keep freed pages for reuse, so this is
    /// their high-water reserve), PyTorch's `torch.cuda.max_memory_reserved()`. `None` on a CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_device_mb: Option<f64>,
    #[serde(default)]
    pub note: String,
    /// `translate`: the hypotheses, one per source line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hypotheses: Vec<String>,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.count / self.seconds
    }
}

/// Token ids in `[3, vocab)` from a seed: reproducible and free of special ids.
fn ids(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let top = vocab.min(32_000) as u64 - 3;
    (0..n as u64).map(|i| (3 + landermt_train::trainer::mix(seed ^ landermt_train::trainer::mix(i)) % top) as u32).collect()
}

/// The update set of `train-landermt`: three consecutive layers two thirds up the stack (where
/// stage 1 put Gemma's en–fr layers, 12–14) and about 90 % of their units, as stage 2 found
/// (1844 general + 14–38 specific of 2048 FFN units on Gemma en–fr).
fn units(cfg: &ModelConfig) -> Vec<LayerUnits> {
    let first = (2 * cfg.num_layers / 3).min(cfg.num_layers.saturating_sub(3));
    let ninety = |n: usize| (0..n).filter(|i| i % 10 != 9).collect::<Vec<_>>();
    (first..(first + 3).min(cfg.num_layers))
        .map(|layer| {
            let n = cfg.intermediate_size;
            let specific: Vec<usize> = (0..n).filter(|i| i % 20 == 9).collect();
            let other: Vec<usize> = (0..n).filter(|i| i % 20 == 19).collect();
            LayerUnits { layer, q: ninety(cfg.q_dim()), k: ninety(cfg.kv_dim()), v: ninety(cfg.kv_dim()), o: ninety(cfg.hidden_size), general: ninety(n), specific, other }
        })
        .collect()
}

pub fn spec(cfg: &ModelConfig, parameters: usize) -> ModelSpec {
    let sliding_window = cfg.layer_attention.iter().find_map(|a| match a {
        landermt_model::config::LayerAttention::Sliding { window } => Some(*window),
        _ => None,
    });
    ModelSpec {
        architecture: format!("{:?}", cfg.architecture).to_lowercase(),
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_layers: cfg.num_layers,
        num_heads: cfg.num_heads,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        tie_word_embeddings: cfg.tie_word_embeddings,
        sliding_window,
        parameters,
    }
}

pub fn inputs(cfg: &ModelConfig, parameters: usize, shapes: Shapes) -> Inputs {
    let rows = |seed: u64, n: usize, len: usize| (0..n).map(|r| ids(seed * 1000 + r as u64, len, cfg.vocab_size)).collect::<Vec<_>>();
    Inputs {
        model: spec(cfg, parameters),
        shapes,
        train_ids: rows(1, shapes.batch, shapes.seq_len),
        prompt_ids: rows(2, shapes.batch, shapes.prompt_len),
        sentences: rows(3, shapes.probe_sentences, shapes.sentence_len),
        units: units(cfg),
        translate: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Nominal FLOPs: 2 per multiply-add of the matmuls, the same formula for both sides, so the two
// fractions of GEMM peak compare like the rates. Embedding lookups, norms and softmax are left
// out; attention counts QKᵀ and AV over the positions a query sees.

struct Flops<'a> {
    cfg: &'a ModelConfig,
}

impl Flops<'_> {
    /// Weights of one block's matmuls.
    fn block(&self) -> f64 {
        let c = self.cfg;
        let attn = c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size;
        let ffn = c.hidden_size * c.intermediate_size * if c.is_gated() { 3 } else { 2 };
        (attn + ffn) as f64
    }
    fn head(&self) -> f64 {
        (self.cfg.hidden_size * self.cfg.vocab_size) as f64
    }
    /// Forward FLOPs of the blocks for `tokens` positions that each see `context` keys on average.
    fn blocks(&self, tokens: f64, context: f64) -> f64 {
        let attn = 4.0 * context * self.cfg.q_dim() as f64;
        tokens * self.cfg.num_layers as f64 * (2.0 * self.block() + attn)
    }
    fn prefill(&self, s: &Shapes) -> f64 {
        let t = s.seq_len as f64;
        self.blocks(s.batch as f64 * t, (t + 1.0) / 2.0) + s.batch as f64 * 2.0 * self.head()
    }
    fn decode(&self, s: &Shapes, rows: usize) -> f64 {
        let (p, n) = (s.prompt_len as f64, s.new_tokens as f64);
        let prompt = self.blocks(rows as f64 * p, (p + 1.0) / 2.0) + rows as f64 * 2.0 * self.head();
        prompt + self.blocks(rows as f64 * (n - 1.0), p + n / 2.0) + rows as f64 * (n - 1.0) * 2.0 * self.head()
    }
    /// One training step: forward, activation gradients (as much again, down to the lowest
    /// trainable layer for the selective methods) and weight gradients of what trains. The LM
    /// head works on the target positions only.
    fn train(&self, s: &Shapes, method: Workload, trainable: f64, lowest_layer: usize) -> f64 {
        let (tokens, targets) = ((s.batch * s.seq_len) as f64, (s.batch * s.target_len) as f64);
        let fwd = self.blocks(tokens, (s.seq_len as f64 + 1.0) / 2.0) + targets * 2.0 * self.head();
        let layers = self.cfg.num_layers as f64;
        let share = (layers - lowest_layer as f64) / layers;
        let back = match method {
            Workload::TrainFull => 2.0 * fwd,
            _ => share * self.blocks(tokens, (s.seq_len as f64 + 1.0) / 2.0) + targets * 2.0 * self.head() + 2.0 * tokens * trainable,
        };
        fwd + back
    }
    fn probe(&self, s: &Shapes) -> f64 {
        let t = s.sentence_len as f64;
        self.blocks(s.probe_sentences as f64 * t, (t + 1.0) / 2.0)
    }
    /// Every prompt and generated token through the blocks and the head; attention left out.
    fn translate(&self, prompt_tokens: usize, generated: usize) -> f64 {
        (prompt_tokens + generated) as f64 * (self.cfg.num_layers as f64 * 2.0 * self.block() + 2.0 * self.head())
    }
    /// Forward with logits at every position, and activation gradients all the way down.
    fn score(&self, s: &Shapes) -> f64 {
        let t = s.sentence_len as f64;
        let tokens = s.score_sentences as f64 * t;
        2.0 * (self.blocks(tokens, (t + 1.0) / 2.0) + tokens * 2.0 * self.head())
    }
}

// ---------------------------------------------------------------------------------------------
// Our side of each workload, in the child process.

fn vm_hwm_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// The device memory `device`'s allocator holds reserved, in MiB; `None` on a backend without
/// a device allocator (flex, ndarray: their memory is the process's, in the peak RSS).
pub fn device_reserved_mb(device: &burn::tensor::Device) -> Option<f64> {
    device.memory_pool_usage().map(|u| u.bytes_reserved as f64 / (1u64 << 20) as f64)
}

/// A `/proc/self/status` memory line (`VmHWM:`, `VmRSS:`) in MB; NaN where there is none.
fn proc_status_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `workload` on the model at `path` with `inputs`; the timed part excludes loading and
/// one warm-up round.
pub fn run_ours(workload: Workload, path: &Path, inputs: &Inputs, backend: Backend, dtype: WeightDtype) -> Result<Measured> {
    let s = inputs.shapes;
    let device = landermt_pipeline::gemm_device(backend, &Default::default(), Some(path))?;
    // What the loaded model keeps resident, apart from the peak (which loading may set).
    let resident = std::cell::Cell::new((f64::NAN, f64::NAN));
    let measured = |count: f64, seconds: f64, flops: f64, note: String| Measured {
        workload: workload.name().into(),
        side: match (backend, dtype) {
            (Backend::Flex, WeightDtype::F32) => "landermt".into(),
            (Backend::Flex, _) => format!("landermt-{dtype}"),
            _ => format!("landermt-{backend}"),
        },
        count,
        unit: workload.unit().into(),
        seconds,
        flops,
        peak_rss_mb: vm_hwm_mb(),
        peak_device_mb: device_reserved_mb(&device),
        note: match resident.get() {
            (r, _) if r.is_nan() => note,
            (r, p) => format!("{r:.0} MB resident after loading, peak {p:.0} MB by then; {note}"),
        },
        hypotheses: Vec::new(),
    };
    if workload == Workload::Gemm {
        let n = s.gemm_n;
        let flops = 2.0 * (n * n * n) as f64;
        if backend != Backend::Flex {
            let t = gpu_gemm(n, &device);
            return Ok(measured(flops / 1e9, t.median, flops, format!("{n}×{n}·{n}×{n}, {}", t.describe())));
        }
        let best = best_gemm_seconds(n, &device);
        return Ok(measured(flops / 1e9, best, flops, format!("{n}×{n}·{n}×{n}, best of 5")));
    }
    let autodiff = matches!(workload, Workload::TrainLandermt | Workload::TrainLora | Workload::TrainFull | Workload::Score);
    // `full` trains every weight, so they stay f32 (as the pipeline does).
    let dtype = if workload == Workload::TrainFull { WeightDtype::F32 } else { dtype };
    let model = LanguageModel::load_as(path, &if autodiff { device.clone().autodiff() } else { device.clone() }, dtype)?;
    // The decoding workloads run the model as the eval stage does.
    let decoding = matches!(workload, Workload::Prefill | Workload::DecodeB1 | Workload::DecodeB8 | Workload::Translate);
    let model = if decoding { model.into_decoding() } else { model };
    resident.set((proc_status_mb("VmRSS:"), vm_hwm_mb()));
    let cfg = model.config.clone();
    let flops = Flops { cfg: &cfg };
    let pad = cfg.pad_token_id.unwrap_or(0);
    match workload {
        // On a GPU: steady state (crate::steady), one round being the whole workload.
        Workload::Prefill if backend != Backend::Flex => {
            let t = crate::steady::steady(&device, &mut || prefill_runs(&model, inputs, pad));
            let tokens = (s.prefill_runs * s.batch * s.seq_len) as f64;
            Ok(measured(tokens, t.median, s.prefill_runs as f64 * flops.prefill(&s), t.describe()))
        }
        Workload::Prefill => {
            let seconds = prefill_seconds(&model, inputs, pad);
            let tokens = (s.prefill_runs * s.batch * s.seq_len) as f64;
            Ok(measured(tokens, seconds, s.prefill_runs as f64 * flops.prefill(&s), String::new()))
        }
        Workload::DecodeB1 | Workload::DecodeB8 => {
            let (n, seconds, f, note) = decode(workload, &model, inputs, backend, &device, &flops);
            Ok(measured(n, seconds, f, note))
        }
        Workload::TrainLandermt | Workload::TrainLora | Workload::TrainFull => train(workload, model, inputs, &flops).map(|(count, seconds, f, note)| measured(count, seconds, f, note)),
        Workload::Probe => {
            let (n, seconds, f, note) = probe(&model, inputs, &flops);
            Ok(measured(n, seconds, f, note))
        }
        Workload::Score => {
            let (n, seconds, f, note) = score(model, inputs, &flops);
            Ok(measured(n, seconds, f, note))
        }
        Workload::Translate => translate(&model, inputs, &flops).map(|(n, seconds, f, note, hyps)| Measured { hypotheses: hyps, ..measured(n, seconds, f, note) }),
        Workload::Gemm => unreachable!("handled above"),
    }
}

/// Greedy decoding of one prompt (`decode-b1`) or a batch (`decode-b8`), every row to
/// `new_tokens`: (tokens, seconds, FLOPs, note). On a GPU, the steady state.
fn decode(workload: Workload, model: &LanguageModel, inputs: &Inputs, backend: Backend, device: &burn::tensor::Device, flops: &Flops) -> (f64, f64, f64, String) {
    let s = inputs.shapes;
    let pad = model.config.pad_token_id.unwrap_or(0);
    let rows = if workload == Workload::DecodeB1 { 1 } else { s.batch };
    let prompts = &inputs.prompt_ids[..rows];
    // No stop ids: every row generates exactly `new_tokens`.
    let opts = |n: usize| GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens: n, stop_ids: Vec::new(), pad_id: pad };
    if backend != Backend::Flex {
        let mut tokens = 0;
        let t = crate::steady::steady(device, &mut || tokens = greedy(&model.net, prompts, &opts(s.new_tokens)).iter().map(Vec::len).sum());
        return (tokens as f64, t.median, flops.decode(&s, rows), format!("includes the prompt's prefill; {}", t.describe()));
    }
    greedy(&model.net, prompts, &opts(2));
    let start = Instant::now();
    let out = greedy(&model.net, prompts, &opts(s.new_tokens));
    let tokens: usize = out.iter().map(Vec::len).sum();
    (tokens as f64, start.elapsed().as_secs_f64(), flops.decode(&s, rows), "includes the prompt's prefill".into())
}

/// The probe's block means over the bench sentences, after one warm-up batch.
fn probe(model: &LanguageModel, inputs: &Inputs, flops: &Flops) -> (f64, f64, f64, String) {
    let s = inputs.shapes;
    landermt_probe::block_means_of_ids(model, &inputs.sentences[..s.batch.min(inputs.sentences.len())], s.batch, &|_| {});
    let start = Instant::now();
    landermt_probe::block_means_of_ids(model, &inputs.sentences, s.batch, &|_| {});
    (inputs.sentences.len() as f64, start.elapsed().as_secs_f64(), flops.probe(&s), format!("batch {}", s.batch))
}

/// Taylor awareness over the bench's score sentences, after one warm-up batch.
fn score(model: LanguageModel, inputs: &Inputs, flops: &Flops) -> (f64, f64, f64, String) {
    let s = inputs.shapes;
    let model = landermt_score::frozen(model);
    let sentences = &inputs.sentences[..s.score_sentences];
    landermt_score::awareness(&model, &sentences[..s.batch.min(sentences.len())], s.batch, &|_| {});
    let start = Instant::now();
    landermt_score::awareness(&model, sentences, s.batch, &|_| {});
    (sentences.len() as f64, start.elapsed().as_secs_f64(), flops.score(&s), format!("batch {}", s.batch))
}

/// The best of five timings of an n×n·n×n f32 product, after one warm-up (the CPU measure:
/// flex computes as it goes).
fn best_gemm_seconds(n: usize, device: &burn::tensor::Device) -> f64 {
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let product = || drop(a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_data());
    product();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            product();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// One prefill of the padded training batch, to the last position's logits (read back).
fn prefill(model: &LanguageModel, batch: &Batch) {
    let mut cache = KvCache::new(model.config.num_layers);
    let hidden = model.net.forward(batch, Some(&mut cache), &mut Taps::none());
    let t = hidden.dims()[1];
    let _ = model.net.logits(hidden.narrow(1, t - 1, 1)).into_data();
}

/// `prefill_runs` prefills.
fn prefill_runs(model: &LanguageModel, inputs: &Inputs, pad: u32) {
    let batch = Batch::left_padded(&inputs.train_ids, pad);
    (0..inputs.shapes.prefill_runs).for_each(|_| prefill(model, &batch));
}

/// Seconds for `prefill_runs` prefills, after one warm-up prefill (the CPU measure).
fn prefill_seconds(model: &LanguageModel, inputs: &Inputs, pad: u32) -> f64 {
    prefill(model, &Batch::left_padded(&inputs.train_ids, pad));
    let start = Instant::now();
    prefill_runs(model, inputs, pad);
    start.elapsed().as_secs_f64()
}

/// An n×n·n×n f32 product on a GPU in steady state: the products are kept until the device
/// has synchronised, so that no backend can skip one whose result is never read.
fn gpu_gemm(n: usize, device: &burn::tensor::Device) -> crate::steady::Timing {
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let mut kept: Vec<Tensor<2>> = Vec::new();
    crate::steady::steady(device, &mut || {
        kept.clear();
        kept.push(a.clone().matmul(b.clone()));
    })
}

/// `translate` on our side: the eval stage's decoder, after one warm-up batch of two lines.
/// Returns (sentences, seconds, flops, note, hypotheses).
fn translate(model: &LanguageModel, inputs: &Inputs, flops: &Flops) -> Result<(f64, f64, f64, String, Vec<String>)> {
    let tr = inputs.translate.as_ref().context("the translate workload needs a model with real weights (Gemma)")?;
    let direction: landermt_data::Direction = "en-fr".parse().map_err(anyhow::Error::msg)?;
    let opts = landermt_eval::decode::DecodeOptions { max_new_tokens: tr.max_new_tokens, batch_size: tr.batch, ..Default::default() };
    let decoder = landermt_eval::decode::Decoder::new(model, &opts);
    decoder.translate(direction, &tr.sources[..2.min(tr.sources.len())], &[], &|_| {})?;
    let start = Instant::now();
    let out = decoder.translate(direction, &tr.sources, &[], &|_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    let prompt_tokens: usize = tr.prompts.iter().map(|p| model.encode(p).map(|ids| ids.len())).sum::<landermt_model::Result<usize>>()?;
    let note = format!("batch {}, {} tokens generated", tr.batch, out.generated_tokens);
    Ok((tr.sources.len() as f64, seconds, flops.translate(prompt_tokens, out.generated_tokens), note, out.lines))
}

/// Training steps of one method on `batch` sequences of `seq_len` ids, the last `target_len`
/// of each being the target. Returns (tokens, seconds, flops, note) of the timed steps.
fn train(workload: Workload, mut model: LanguageModel, inputs: &Inputs, flops: &Flops) -> Result<(f64, f64, f64, String)> {
    use landermt_train::{Method, Trainee, UnitSet, added::AddedSettings};
    let s = inputs.shapes;
    let cfg = model.config.clone();
    let (method, units) = match workload {
        Workload::TrainFull => (Method::Full, None),
        Workload::TrainLora => (Method::Lora, None),
        _ => {
            // The routed FFN (taylor CAR) of the selected layers, as stage 4 trains it.
            let layers = inputs
                .units
                .iter()
                .map(|l| landermt_route::RoutedLayer {
                    layer: l.layer,
                    units: cfg.intermediate_size,
                    counts: [l.general.len(), l.specific.len(), l.other.len()],
                    general: l.general.clone(),
                    specific: l.specific.clone(),
                    other: l.other.clone(),
                    gbar: vec![1e-3; cfg.intermediate_size],
                    static_car: 0.95,
                })
                .collect();
            let pair = ["en".parse().expect("known language"), "fr".parse().expect("known language")];
            let route = landermt_route::Route { version: landermt_route::ROUTE_VERSION, model: "bench".into(), pair, car: CarMode::Taylor, start: Default::default(), layers, check: None };
            landermt_route::apply(&mut model, &route)?;
            let mut set = UnitSet::new();
            for l in &inputs.units {
                for (site, u) in [(Site::AttnQ, l.q.clone()), (Site::AttnK, l.k.clone()), (Site::AttnV, l.v.clone()), (Site::AttnO, l.o.clone()), (Site::FfnAct, l.ffn())] {
                    set.insert((l.layer, site), u);
                }
            }
            (Method::Landermt, Some(set))
        }
    };
    let sizes = AddedSettings { lora_rank: s.lora_rank, ..AddedSettings::default() };
    let selected: Vec<usize> = inputs.units.iter().map(|l| l.layer).collect();
    let mut trainee = Some(Trainee::with_added(model.net, method, units.as_ref(), &selected, &sizes, 1));
    let trainable: usize = landermt_train::ids::trainable(trainee.as_ref().expect("set")).iter().map(|(_, t)| t.shape().num_elements()).sum();
    let mut optim = landermt_train::adamw(0.01);
    let direction: landermt_data::Direction = "en-fr".parse().expect("valid direction");
    let examples: Vec<landermt_train::Example> = inputs.train_ids.iter().map(|ids| landermt_train::Example { direction, ids: ids.clone(), target_len: s.target_len }).collect();
    let refs: Vec<&landermt_train::Example> = examples.iter().collect();
    let pad = cfg.pad_token_id.unwrap_or(0);
    let mut step = || {
        let (next, loss) = landermt_train::step(trainee.take().expect("set"), &mut optim, 1e-4, &refs, pad);
        trainee = Some(next);
        loss
    };
    step();
    let start = Instant::now();
    (0..s.train_steps).for_each(|_| {
        step();
    });
    let seconds = start.elapsed().as_secs_f64();
    let lowest = match method {
        Method::Landermt => selected.iter().copied().min().unwrap_or(0),
        _ => 0,
    };
    let f = s.train_steps as f64 * flops.train(&s, workload, trainable as f64, lowest);
    let note = format!("{trainable} trainable parameters");
    Ok(((s.train_steps * s.batch * s.seq_len) as f64, seconds, f, note))
}

// ---------------------------------------------------------------------------------------------
// The parent: models, inputs, children, table.

/// The LLaMA-shaped model: 16 layers of hidden 1024, 16 heads over 4 key/value heads, SwiGLU of
/// 2816, 32k vocabulary, untied head (about 250M parameters), random weights.
fn llama_folder(dir: &Path) -> Result<PathBuf> {
    let (v, h, l, heads, kv, hd, ff) = (32_000usize, 1024usize, 16usize, 16usize, 4usize, 64usize, 2816usize);
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": v, "hidden_size": h, "intermediate_size": ff, "num_hidden_layers": l,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "attention_bias": false, "mlp_bias": false, "tie_word_embeddings": false,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "float32"
    });
    let mut tensors: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![v, h]), ("lm_head.weight".into(), vec![v, h]), ("model.norm.weight".into(), vec![h])];
    let block = [
        ("self_attn.q_proj", vec![heads * hd, h]),
        ("self_attn.k_proj", vec![kv * hd, h]),
        ("self_attn.v_proj", vec![kv * hd, h]),
        ("self_attn.o_proj", vec![h, heads * hd]),
        ("mlp.gate_proj", vec![ff, h]),
        ("mlp.up_proj", vec![ff, h]),
        ("mlp.down_proj", vec![h, ff]),
        ("input_layernorm", vec![h]),
        ("post_attention_layernorm", vec![h]),
    ];
    tensors.extend((0..l).flat_map(|i| block.iter().map(move |(name, shape)| (format!("model.layers.{i}.{name}.weight"), shape.clone()))));
    random_folder(&dir.join("llama-250m"), &config, "llama-tiny", tensors, 1.0)
}

/// A model of Gemma 3 270M's shape (18 layers of hidden 640, 4 heads over 1 key/value head of
/// 256, GELU FFN of 2048, 262k tied vocabulary, sliding window 512 on five layers of six) with
/// random weights: on a machine without the 253 MB GGUF (the device machine takes 64 MiB), the
/// same GEMM shapes and memory, so the same speed.
pub fn gemma_shaped_folder(dir: &Path) -> Result<PathBuf> {
    let (v, h, l, heads, kv, hd, ff) = (262_144usize, 640usize, 18usize, 4usize, 1usize, 256usize, 2048usize);
    let layer_types: Vec<&str> = (0..l).map(|i| if (i + 1) % 6 == 0 { "full_attention" } else { "sliding_attention" }).collect();
    let config = serde_json::json!({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "hidden_activation": "gelu_pytorch_tanh", "vocab_size": v, "hidden_size": h,
        "intermediate_size": ff, "num_hidden_layers": l, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": hd, "query_pre_attn_scalar": hd,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "sliding_window": 512,
        "layer_types": layer_types, "_sliding_window_pattern": 6,
        "rope_parameters": {
            "full_attention": { "rope_theta": 1_000_000.0, "rope_type": "default" },
            "sliding_attention": { "rope_theta": 10_000.0, "rope_type": "default" }
        },
        "attention_bias": false, "attn_logit_softcapping": null, "final_logit_softcapping": null,
        "tie_word_embeddings": true, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "dtype": "float32"
    });
    let mut tensors: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![v, h]), ("model.norm.weight".into(), vec![h])];
    let block = [
        ("self_attn.q_proj", vec![heads * hd, h]),
        ("self_attn.k_proj", vec![kv * hd, h]),
        ("self_attn.v_proj", vec![kv * hd, h]),
        ("self_attn.o_proj", vec![h, heads * hd]),
        ("self_attn.q_norm", vec![hd]),
        ("self_attn.k_norm", vec![hd]),
        ("mlp.gate_proj", vec![ff, h]),
        ("mlp.up_proj", vec![ff, h]),
        ("mlp.down_proj", vec![h, ff]),
        ("input_layernorm", vec![h]),
        ("post_attention_layernorm", vec![h]),
        ("pre_feedforward_layernorm", vec![h]),
        ("post_feedforward_layernorm", vec![h]),
    ];
    tensors.extend((0..l).flat_map(|i| block.iter().map(move |(name, shape)| (format!("model.layers.{i}.{name}.weight"), shape.clone()))));
    // Gemma's norms scale by (1 + w): 0 is the identity.
    random_folder(&dir.join("gemma-3-270m-shaped"), &config, "gemma3-tiny", tensors, 0.0)
}

/// Writes `config.json`, a tiny fixture's tokenizer and `model.safetensors` with the named
/// tensors: matrices uniform in ±0.035 (std 0.02, transformers' initializer_range), vectors (the
/// norms) at `norm`. Written once: an existing folder is reused.
fn random_folder(folder: &Path, config: &serde_json::Value, tokenizer_of: &str, tensors: Vec<(String, Vec<usize>)>, norm: f32) -> Result<PathBuf> {
    if folder.join("model.safetensors").is_file() {
        return Ok(folder.to_path_buf());
    }
    std::fs::create_dir_all(folder)?;
    std::fs::write(folder.join("config.json"), serde_json::to_string_pretty(config)?)?;
    let tokenizer = repo_file(&format!("tests/fixtures/hf-tiny/{tokenizer_of}/tokenizer.json"));
    std::fs::copy(&tokenizer, folder.join("tokenizer.json")).with_context(|| format!("copying {}", tokenizer.display()))?;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = if shape.len() == 1 {
                std::iter::repeat_n(norm, n).flat_map(f32::to_le_bytes).collect()
            } else {
                landermt_train::added::uniform(7, k as u64).take(n).flat_map(|u| ((2.0 * u - 1.0) * 0.0346).to_le_bytes()).collect()
            };
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        data.iter().map(|(name, shape, bytes)| (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).expect("consistent shape"))).collect();
    let tmp = folder.join("model.safetensors.partial");
    safetensors::serialize_to_file(views, None, &tmp)?;
    std::fs::rename(&tmp, folder.join("model.safetensors"))?;
    Ok(folder.to_path_buf())
}

pub struct BenchArgs {
    pub models: Vec<BenchModel>,
    pub workloads: Vec<Workload>,
    pub vs_torch: bool,
    pub python: String,
    pub out: PathBuf,
    /// Where the random-weight models are written once and reused.
    pub models_dir: PathBuf,
    /// Our side's backend (`flex` unless a GPU build asks for another).
    pub backend: Backend,
    /// PyTorch's device: `cpu`, or `cuda` beside a GPU backend.
    pub torch_device: String,
    /// Our frozen weights' storage; PyTorch runs under bf16 autocast when it is bf16.
    pub dtype: WeightDtype,
    /// The Python with llama-cpp-python (`bench/llamacpp-venv.sh`): llama.cpp as a third side
    /// on Gemma's decode-b1 and translate (`bench/llamacpp_reference.py`), over an f32 GGUF of
    /// the same weights.
    pub llamacpp: Option<String>,
}

/// llama.cpp's measurement of one workload, beside ours (issue 41, item 5).
pub struct LlamacppRow {
    pub model: BenchModel,
    pub ours: Measured,
    pub theirs: Measured,
}

/// The workloads `bench/llamacpp_reference.py` runs.
fn llamacpp_runs(model: BenchModel, w: Workload) -> bool {
    model == BenchModel::Gemma && matches!(w, Workload::DecodeB1 | Workload::Translate)
}

/// `loaded` as an f32 GGUF in `dir` (written once), for llama.cpp.
fn llamacpp_gguf(loaded: &LanguageModel, dir: &Path) -> Result<PathBuf> {
    let path = dir.join("llamacpp-gemma-f32.gguf");
    if !path.exists() {
        landermt_model::export::gguf::write_gguf(loaded, &loaded.net, &path, landermt_model::export::gguf::GgufType::F32)?;
    }
    Ok(path)
}

/// llama.cpp's side of workload `w`, or an error that says how to set it up.
fn llamacpp_side(python: &str, w: Workload, inputs: &Path, gguf: &Path) -> Result<Measured> {
    let mut cmd = Command::new(python);
    landermt_model::blas::mkl::without_our_spin(&mut cmd);
    cmd.arg(repo_file("bench/llamacpp_reference.py")).args(["--workload", w.name(), "--threads", &threads().to_string()]).arg("--inputs").arg(inputs).arg("--gguf").arg(gguf);
    child(cmd, &format!("llama.cpp {} (set up its Python with `bash bench/llamacpp-venv.sh`)", w.name()))
}

/// The llama.cpp table: rates, their ratio, and for translate the lines where the hypotheses
/// agree.
fn llamacpp_table(rows: &[LlamacppRow]) -> String {
    let mut s = String::from("| model | workload | unit/s | landermt | llama.cpp | landermt ÷ llama.cpp | llama.cpp note |\n|---|---|---|---:|---:|---:|---|\n");
    for r in rows {
        let mut note = r.theirs.note.clone();
        if !r.theirs.hypotheses.is_empty() {
            let same = r.ours.hypotheses.iter().zip(&r.theirs.hypotheses).filter(|(a, b)| a == b).count();
            note += &format!("; same hypothesis as ours on {same}/{} lines", r.ours.hypotheses.len());
        }
        s += &format!("| {} | {} | {} | {:.1} | {:.1} | **{:.2}×** | {note} |\n", r.model.label(), r.ours.workload, r.ours.unit, r.ours.rate(), r.theirs.rate(), r.ours.rate() / r.theirs.rate());
    }
    s
}

/// This machine, today and this checkout, for a sitting's `results.json`: a sitting committed
/// under `results/bench/` is what the README's speed figures are regenerated from.
fn machine_here() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string())));
    let commit = Command::new("git").args(["describe", "--always", "--dirty"]).current_dir(repo_file("")).output().ok().filter(|o| o.status.success());
    Machine {
        cpu: cpu.unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        commit: commit.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
    }
}

/// What one `bench` measured: the GEMM pair, and one row per model and workload.
pub struct BenchResults {
    pub gemm: Option<(Measured, Option<Measured>)>,
    pub rows: Vec<(BenchModel, Measured, Option<Measured>)>,
    pub llamacpp: Vec<LlamacppRow>,
}

/// A file of this repository: where the binary was built, or else (a prebuilt binary carried to
/// another machine, as `device-check` is) relative to the current folder, the repository root.
pub fn repo_file(relative: &str) -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    if built.exists() { built } else { PathBuf::from(relative) }
}

pub fn model_path(model: BenchModel, dir: &Path) -> Result<PathBuf> {
    match model {
        BenchModel::Gemma => Ok(landermt_model::cache::known("gemma-3-270m").expect("known model").fetch()?),
        BenchModel::Llama => llama_folder(dir),
        BenchModel::GemmaShaped => gemma_shaped_folder(dir),
    }
}

/// Runs one child and parses its last stdout line as a [`Measured`].
fn child(mut cmd: Command, what: &str) -> Result<Measured> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| format!("{what} printed no result:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed `{line}`"))
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn bench(args: &BenchArgs) -> Result<BenchResults> {
    let dir = args.out.clone();
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let script = repo_file("bench/torch_reference.py");
    let mut rows: Vec<(BenchModel, Measured, Option<Measured>)> = Vec::new();
    let mut gemm: Option<(Measured, Option<Measured>)> = None;
    let mut llamacpp: Vec<LlamacppRow> = Vec::new();
    for &model in &args.models {
        let path = model_path(model, &args.models_dir)?;
        // The dimensions come from the loader itself, so both sides build the same model.
        let loaded = LanguageModel::load(&path, &landermt_pipeline::gemm_device(landermt_model::Backend::Flex, &Default::default(), Some(&path))?)?;
        let params = burn::module::Module::num_params(&loaded.net);
        let inputs_path = dir.join(format!("inputs-{}.json", serde_json::to_value(model)?.as_str().unwrap_or("model")));
        let mut model_inputs = inputs(&loaded.config, params, Shapes::ISSUE);
        if model == BenchModel::Gemma {
            model_inputs.translate = Some(translate_inputs(&path, TRANSLATE_LINES, 16, 64)?);
        }
        std::fs::write(&inputs_path, serde_json::to_string(&model_inputs)?)?;
        let gguf = match &args.llamacpp {
            Some(_) if args.workloads.iter().any(|&w| llamacpp_runs(model, w)) => Some(llamacpp_gguf(&loaded, &dir)?),
            _ => None,
        };
        drop(loaded);
        for &w in &args.workloads {
            if (w == Workload::Gemm && gemm.is_some()) || (w == Workload::Translate && model_inputs.translate.is_none()) {
                continue;
            }
            eprintln!("bench {} {} …", model.label(), w.name());
            let mut cmd = Command::new(&exe);
            cmd.args(["bench-one", "--workload", w.name(), "--backend", args.backend.name(), "--dtype", args.dtype.name(), "--model"]).arg(&path).arg("--inputs").arg(&inputs_path);
            cmd.env("RAYON_NUM_THREADS", threads().to_string());
            let ours = child(cmd, &format!("landermt {}", w.name()))?;
            let theirs = if args.vs_torch {
                let mut cmd = Command::new(&args.python);
                landermt_model::blas::mkl::without_our_spin(&mut cmd);
                cmd.arg(&script).args(["--workload", w.name(), "--threads", &threads().to_string(), "--device", &args.torch_device, "--dtype", args.dtype.name()]).arg("--inputs").arg(&inputs_path);
                Some(child(cmd, &format!("PyTorch {}", w.name()))?)
            } else {
                None
            };
            let llama = match (&args.llamacpp, &gguf) {
                (Some(python), Some(gguf)) if llamacpp_runs(model, w) => Some(llamacpp_side(python, w, &inputs_path, gguf)?),
                _ => None,
            };
            let (ours, theirs) = compare_hypotheses(ours, theirs, &dir)?;
            if let Some(llama) = llama {
                llamacpp.push(LlamacppRow { model, ours: ours.clone(), theirs: llama });
            }
            eprintln!("  ours {:.1} {}/s{}", ours.rate(), ours.unit, theirs.as_ref().map(|t| format!(", PyTorch {:.1}", t.rate())).unwrap_or_default());
            if w == Workload::Gemm {
                gemm = Some((ours, theirs));
            } else {
                rows.push((model, ours, theirs));
            }
        }
    }
    let mut table = format!("Our f32 GEMM: {}.\n\n{}", landermt_model::blas::current(), table(&rows, gemm.as_ref()));
    if !llamacpp.is_empty() {
        table += &format!("\nllama.cpp (llama-cpp-python, an f32 GGUF of the same weights, KV cache f32; translate at batch 1 there):\n\n{}", llamacpp_table(&llamacpp));
    }
    println!("{table}");
    let results = serde_json::json!({
        "machine": machine_here(),
        "threads": threads(),
        "gemm_kernel": landermt_model::blas::current(),
        "gemm": gemm.as_ref().map(|(o, t)| serde_json::json!({ "landermt": o, "torch": t })),
        "rows": rows.iter().map(|(m, o, t)| serde_json::json!({ "model": m, "landermt": o, "torch": t })).collect::<Vec<_>>(),
        "llamacpp": llamacpp.iter().map(|r| serde_json::json!({ "model": r.model, "landermt": r.ours, "llamacpp": r.theirs })).collect::<Vec<_>>(),
    });
    let json = serde_json::to_string_pretty(&results)?;
    landermt_model::atomic::write_atomic(&dir.join("results.json"), |w| w.write_all(json.as_bytes()))?;
    landermt_model::atomic::write_atomic(&dir.join("results.md"), |w| w.write_all(table.as_bytes()))?;
    eprintln!("wrote {} and results.md", dir.join("results.json").display());
    Ok(BenchResults { gemm, rows, llamacpp })
}

/// For `translate`: writes both sides' hypotheses next to the results and says in our note on
/// how many lines they agree.
fn compare_hypotheses(mut ours: Measured, theirs: Option<Measured>, dir: &Path) -> Result<(Measured, Option<Measured>)> {
    if ours.hypotheses.is_empty() {
        return Ok((ours, theirs));
    }
    let write = |side: &str, hyps: &[String]| -> Result<()> {
        let text: String = hyps.iter().map(|h| format!("{h}\n")).collect();
        Ok(landermt_model::atomic::write_atomic(&dir.join(format!("translate-{side}.hyp")), |w| w.write_all(text.as_bytes()))?)
    };
    write("landermt", &ours.hypotheses)?;
    if let Some(t) = &theirs {
        write("torch", &t.hypotheses)?;
        let same = ours.hypotheses.iter().zip(&t.hypotheses).filter(|(a, b)| a == b).count();
        ours.note += &format!("; same hypothesis as PyTorch on {same}/{} lines", ours.hypotheses.len());
    }
    Ok((ours, theirs))
}

/// The markdown table: rate and peak memory per side, their ratio, and the fraction of the
/// measured GEMM throughput (ours against our GEMM, PyTorch's against its own).
fn table(rows: &[(BenchModel, Measured, Option<Measured>)], gemm: Option<&(Measured, Option<Measured>)>) -> String {
    let mut s = String::new();
    let peak = |m: &Measured| m.flops / m.seconds;
    if let Some((o, t)) = gemm {
        s += &format!("f32 GEMM ({}), {} threads: {} {:.1} GFLOP/s", o.note, threads(), o.side, peak(o) / 1e9);
        if let Some(t) = t {
            s += &format!(", PyTorch {:.1} GFLOP/s", peak(t) / 1e9);
        }
        s += "\n\n";
    }
    let ours_peak = gemm.map(|(o, _)| peak(o));
    let torch_peak = gemm.and_then(|(_, t)| t.as_ref().map(peak));
    let frac = |m: &Measured, p: Option<f64>| p.map_or("–".to_string(), |p| format!("{:.0} %", 100.0 * m.flops / m.seconds / p));
    // On a GPU, each side's device memory too (Measured::peak_device_mb).
    let on_device = rows.iter().any(|(_, o, t)| o.peak_device_mb.is_some() || t.as_ref().is_some_and(|t| t.peak_device_mb.is_some()));
    let mb = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0} MB"));
    s += "| model | workload | unit/s | landermt | PyTorch | landermt ÷ PyTorch | landermt peak RSS | PyTorch peak RSS | landermt % of GEMM | PyTorch % of GEMM |";
    s += if on_device { " landermt device memory | PyTorch device memory |\n" } else { "\n" };
    s += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|";
    s += if on_device { "---:|---:|\n" } else { "\n" };
    for (model, o, t) in rows {
        let (tr, ratio, trss, tf) = match t {
            Some(t) => (format!("{:.1}", t.rate()), format!("**{:.2}×**", o.rate() / t.rate()), format!("{:.0} MB", t.peak_rss_mb), frac(t, torch_peak)),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        s += &format!("| {} | {} | {} | {:.1} | {tr} | {ratio} | {:.0} MB | {trss} | {} | {tf} |", model.label(), o.workload, o.unit, o.rate(), o.peak_rss_mb, frac(o, ours_peak));
        if on_device {
            s += &format!(" {} | {} |", mb(o.peak_device_mb), mb(t.as_ref().and_then(|t| t.peak_device_mb)));
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (PathBuf, Inputs) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf-tiny/llama-tiny");
        let model = LanguageModel::load(&path, &burn::tensor::Device::flex()).unwrap();
        let params = burn::module::Module::num_params(&model.net);
        let mut inputs = inputs(&model.config, params, Shapes::TINY);
        inputs.translate = Some(translate_inputs(&path, 3, 2, 3).unwrap());
        (path, inputs)
    }

    #[test]
    fn every_workload_runs_on_a_tiny_model_and_counts_its_work() {
        let (path, inputs) = tiny();
        for w in Workload::ALL {
            let m = run_ours(w, &path, &inputs, Backend::Flex, WeightDtype::F32).unwrap();
            let s = Shapes::TINY;
            let expected = match w {
                Workload::Gemm => 2.0 * (s.gemm_n.pow(3)) as f64 / 1e9,
                Workload::Prefill => (s.prefill_runs * s.batch * s.seq_len) as f64,
                Workload::DecodeB1 => s.new_tokens as f64,
                Workload::DecodeB8 => (s.batch * s.new_tokens) as f64,
                Workload::TrainLandermt | Workload::TrainLora | Workload::TrainFull => (s.train_steps * s.batch * s.seq_len) as f64,
                Workload::Probe => s.probe_sentences as f64,
                Workload::Score => s.score_sentences as f64,
                Workload::Translate => 3.0,
            };
            assert_eq!(m.count, expected, "{}", w.name());
            if w == Workload::Translate {
                assert_eq!(m.hypotheses.len(), 3, "one hypothesis per source line");
            }
            assert!(m.seconds > 0.0 && m.flops > 0.0 && m.peak_rss_mb > 0.0, "{m:?}");
            assert_eq!(m.peak_device_mb, None, "flex's memory is the process's");
        }
    }

    // On wgpu the device memory is read from the allocator: a 64 MiB tensor shows in it while it
    // lives, and a workload's measurement carries a reserve at least its weights' size, which the
    // table then shows.
    #[test]
    fn device_memory_on_wgpu_counts_a_known_tensor_and_reaches_the_table() {
        let Some(device) = Backend::Wgpu.test_device("device_memory_on_wgpu_counts_a_known_tensor_and_reaches_the_table") else { return };
        let t = Tensor::<1>::ones([16 << 20], &device);
        let _ = t.clone().narrow(0, 0, 1).into_data();
        let usage = device.memory_pool_usage().expect("wgpu reports its pools");
        assert!(usage.bytes_in_use >= 64 << 20, "a live 64 MiB tensor, {} bytes in use", usage.bytes_in_use);
        assert!(device_reserved_mb(&device).unwrap() >= 64.0);
        drop(t);
        let (path, inputs) = tiny();
        let m = run_ours(Workload::Prefill, &path, &inputs, Backend::Wgpu, WeightDtype::F32).unwrap();
        let weights_mb = 4.0 * inputs.model.parameters as f64 / (1u64 << 20) as f64;
        assert!(m.peak_device_mb.is_some_and(|mb| mb >= weights_mb), "{:?} MB for {weights_mb} MB of weights", m.peak_device_mb);
        let table = table(&[(BenchModel::Llama, m, None)], None);
        assert!(table.contains("landermt device memory") && table.lines().nth(2).unwrap().ends_with(" – |"), "{table}");
    }

    #[test]
    fn the_landermt_update_set_is_three_layers_two_thirds_up_and_ninety_percent_of_units() {
        let (_, inputs) = tiny();
        // llama-tiny: 4 layers, FFN 176 → layers 1..4 (clipped to the stack), 158 + 9 FFN units.
        let layers: Vec<usize> = inputs.units.iter().map(|l| l.layer).collect();
        assert_eq!(layers, vec![1, 2, 3]);
        let l = &inputs.units[0];
        assert_eq!(l.general.len() + l.specific.len() + l.other.len(), 176);
        assert_eq!(l.ffn().len(), l.general.len() + l.specific.len());
        assert!(l.general.iter().all(|u| !l.specific.contains(u) && !l.other.contains(u)));
    }

    #[test]
    fn prefill_flops_are_two_per_weight_per_token_plus_attention() {
        let (_, inputs) = tiny();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf-tiny/llama-tiny");
        let cfg = LanguageModel::load(&path, &burn::tensor::Device::flex()).unwrap().config;
        let f = Flops { cfg: &cfg };
        // llama-tiny: hidden 64, 4 heads × 16, FFN 176 (SwiGLU), 4 layers, vocab 1888.
        let block = (64 * (64 + 2 * 64) + 64 * 64 + 3 * 64 * 176) as f64;
        assert_eq!(f.block(), block);
        let s = inputs.shapes;
        let t = s.seq_len as f64;
        let expected = s.batch as f64 * t * 4.0 * (2.0 * block + 4.0 * (t + 1.0) / 2.0 * 64.0) + s.batch as f64 * 2.0 * 64.0 * 1888.0;
        assert!((f.prefill(&s) - expected).abs() < 1e-6 * expected);
    }
}
