//! `cargo xtask …`: the command-line layer over the landermt crates. It parses arguments,
//! orders stages and reports progress; the work itself is in the libraries.

mod inspect;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use landermt_bench::{bench, device_check};
use landermt_model::{Backend, cache};
use landermt_pipeline::run::{self, mark, system_arg};
use landermt_pipeline::{RunConfig, device, figures, stages, sweep};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "landermt: language-aware neurons for machine translation")]
struct Cli {
    /// Show info-level logs on the terminal (the pipeline always writes them to `{run}/pipeline.log`).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the LANDeRMT pipeline of a run config (probe → score → route → train → eval).
    Pipeline {
        #[arg(long)]
        config: PathBuf,
        /// Print the plan without running anything.
        #[arg(long)]
        dry_run: bool,
        /// Run every stage, current or not.
        #[arg(long)]
        force: bool,
        /// Run this stage and every later one, current or not (probe, score, route, train, eval).
        #[arg(long)]
        from: Option<String>,
        /// Run only this stage.
        #[arg(long)]
        only: Option<String>,
        /// In a run over several language pairs, only these pairs (e.g. `en-de,en-fr`), with
        /// the shared score stage and the joint report.
        #[arg(long, value_delimiter = ',')]
        pairs: Option<Vec<String>>,
    },
    /// Check that the README's results tables and quoted numbers are the committed results'
    /// (`--write`: regenerate the tables instead).
    Claims {
        #[arg(long)]
        write: bool,
    },
    /// Stage 1: find the language-pair-relevant layers and write `layers.json` in the run directory.
    Probe {
        #[arg(long)]
        config: PathBuf,
    },
    /// Stage 2: score every neuron's language awareness and write `neurons.safetensors` and
    /// `neurons.json` (needs `layers.json`).
    Score {
        #[arg(long)]
        config: PathBuf,
    },
    /// Stage 3: partition the selected layers' FFN units for the run's language pair and write
    /// `route.json` (needs `neurons.*`).
    Route {
        #[arg(long)]
        config: PathBuf,
    },
    /// Stage 4: fine-tune with `train.method` (or `--method`) into `{run}/train/{method}/`,
    /// resuming from its checkpoint.
    Train {
        #[arg(long)]
        config: PathBuf,
        /// landermt | landermt-ls | landermt-lg | layers | full | lora | adapter | adapter-lora | none
        #[arg(long)]
        method: Option<String>,
        /// Train on this one of the run's directions alone (for the transfer matrix), into
        /// `{run}/train/{method}@{direction}/`.
        #[arg(long)]
        direction: Option<String>,
        /// In a run over several language pairs, the pair (e.g. `en-de`; default: the pair of
        /// `--direction`).
        #[arg(long)]
        pair: Option<String>,
    },
    /// Stage 5: decode the test sets with every configured method, score them, and write
    /// `report.json` and `report.md`.
    Eval {
        #[arg(long)]
        config: PathBuf,
    },
    /// Train one method at each value of one config key and score every point on the dev set:
    /// `--set train.lr=1e-5,3e-5,1e-4`, `probe.k=2,4,6`, `score.epsilon=0.8,0.9`,
    /// `route.car=taylor,off`, `train.pairs=100,500`. Points go to
    /// `{run}/sweep/{method}/{key}/{value}/`, with `sweep.json`, `sweep.md` and figures beside
    /// them; stages upstream of the key are reused, and a sweep run again resumes.
    Sweep {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        method: String,
        /// `section.key=value1,value2,…` (TOML values; bare words are strings).
        #[arg(long)]
        set: String,
        /// Dev lines decoded per direction for dev BLEU (default: `train.dev_pairs`, the lines
        /// of the dev loss).
        #[arg(long)]
        dev_lines: Option<usize>,
        /// How the best value is chosen: `bleu` (mean dev BLEU) or `loss` (final dev loss).
        #[arg(long, value_enum, default_value = "bleu")]
        by: sweep::By,
    },
    /// Export a trained system: `hf`, a Hugging Face folder with the delta merged (config.json,
    /// model.safetensors, tokenizer.json; modeling_landermt.py for token-dependent CAR and
    /// adapters), or `peft`, LoRA as a PEFT adapter folder.
    Export {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        method: Option<String>,
        /// The system trained on this direction alone (`train/{method}@{direction}`).
        #[arg(long)]
        direction: Option<String>,
        /// In a run over several language pairs, the pair (e.g. `en-de`; default: the pair of
        /// `--direction`).
        #[arg(long)]
        pair: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// `hf`, `peft`, `gguf` (f32 matrices), `gguf-f16`, `gguf-bf16` or `gguf-q8_0` (`--out` is then the file).
        #[arg(long, default_value = "hf")]
        format: landermt_pipeline::stages::Format,
    },
    /// Score a hypothesis file against a reference file as sacreBLEU 2.6.0 would (our
    /// implementation of its definitions).
    Bleu {
        #[arg(long = "ref")]
        reference: PathBuf,
        #[arg(long)]
        hyp: PathBuf,
        /// 13a | zh | intl | char | none
        #[arg(long, default_value = "13a")]
        tokenize: String,
        /// bleu | chrf | chrf++
        #[arg(long, default_value = "bleu")]
        metric: String,
        #[arg(long)]
        lowercase: bool,
        /// Print `{"score": …, "signature": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Draw the analysis figures (CSV + SVG) of a run directory into `{run}/figures/`.
    Plot {
        #[arg(long)]
        run: PathBuf,
    },
    /// Run a model on a text and write its ids, logits (and hidden states) as safetensors.
    Forward {
        /// A Hugging Face folder, a .gguf file, or the name of a cached model.
        #[arg(long)]
        model: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        out: PathBuf,
        /// Also write `hidden` [L+1, T, H] (transformers' output_hidden_states).
        #[arg(long)]
        hidden: bool,
        #[arg(long, default_value = "flex")]
        backend: Backend,
    },
    /// Print the greedy continuation of a text and its token ids.
    Generate {
        #[arg(long)]
        model: String,
        #[arg(long)]
        text: String,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        #[arg(long, default_value = "flex")]
        backend: Backend,
    },
    /// Put a known model (e.g. gemma-3-270m) into the local model cache.
    FetchModel { name: String },
    /// Download OpenBLAS (the PyPI wheel `scipy-openblas32`) into the cache for the f32 GEMM.
    /// Runs with `model.gemm = "auto"` (the default) do this themselves when it is missing.
    FetchBlas {
        /// MKL instead (the PyPI wheel `mkl`, 229 MB; about 490 MB in the cache). `auto`
        /// fetches it itself on Intel CPUs only, and measures it wherever it is cached.
        #[arg(long)]
        mkl: bool,
    },
    /// Measure prefill, decoding, training, probe and score throughput and peak memory on
    /// Gemma 3 270M and a LLaMA-shaped model of similar size (see BENCHMARKS.md).
    Bench {
        /// Models to run (default: both).
        #[arg(long, value_enum)]
        model: Vec<bench::BenchModel>,
        /// Workloads to run (default: all).
        #[arg(long, value_enum)]
        workload: Vec<bench::Workload>,
        /// Run the same workloads in PyTorch (`bench/torch_reference.py`) and print the ratios.
        #[arg(long)]
        vs_torch: bool,
        /// The Python that has torch, transformers and peft.
        #[arg(long, default_value = "python3", env = "LANDERMT_PYTHON")]
        python: String,
        /// Where inputs, the random LLaMA and results go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Our side's backend (`wgpu` and `cuda` need their cargo features).
        #[arg(long, default_value = "flex")]
        backend: landermt_model::Backend,
        /// PyTorch's device with `--vs-torch`: `cpu`, or `cuda`.
        #[arg(long, default_value = "cpu")]
        torch_device: String,
        /// `bf16`: our frozen weights stored in bf16 (`model.dtype`), PyTorch under bf16 autocast.
        #[arg(long, default_value = "f32")]
        dtype: landermt_model::WeightDtype,
        /// Also run llama.cpp on Gemma's decode-b1 and translate, with this Python (the one
        /// `bash bench/llamacpp-venv.sh` prints), over an f32 GGUF of the same weights.
        #[arg(long, env = "LANDERMT_LLAMACPP_PYTHON")]
        vs_llamacpp: Option<String>,
    },
    /// One workload of `bench` in this process, printed as a JSON line (what `bench` runs).
    #[command(hide = true)]
    BenchOne {
        #[arg(long, value_enum)]
        workload: bench::Workload,
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        inputs: PathBuf,
        #[arg(long, default_value = "flex")]
        backend: landermt_model::Backend,
        #[arg(long, default_value = "f32")]
        dtype: landermt_model::WeightDtype,
    },
    /// NVRTC and the CUDA headers the `cuda` backend needs at run time, from NVIDIA's PyPI
    /// wheels into the cache (for a GPU machine without a CUDA toolkit); prints the exports.
    FetchCudaRuntime,
    /// Build xtask with the `cuda` and `wgpu` features (offline, in `target/gpu-check`).
    CheckGpu,
    /// On a GPU machine: parity of the `cuda` and `wgpu` backends (tiny fixtures, Gemma where
    /// cached) and their bench timings beside PyTorch CUDA, in one table (BENCHMARKS.md).
    DeviceCheck {
        /// The Python whose torch is compared with, where it sees the GPU.
        #[arg(long, default_value = "python3", env = "LANDERMT_PYTHON")]
        python: String,
        /// Where the table and the bench results go.
        #[arg(long, default_value = "target/device-check")]
        out: PathBuf,
        /// Parity only, no timing.
        #[arg(long)]
        no_bench: bool,
    },
    /// Fuzz a parser with mutated valid files (see RELIABILITY.md): counts executions, panics
    /// (inputs saved under `target/fuzz/{target}/`), hangs and over-sized allocations.
    Fuzz {
        /// gguf, safetensors, safetensors-index, hf-config, tokenizer-json, run-config, corpus,
        /// artifacts, or `all`.
        #[arg(long, default_value = "all")]
        target: String,
        /// Seconds per target.
        #[arg(long)]
        secs: Option<f64>,
        /// Executions per target (default: 1,000,000 when --secs is not given).
        #[arg(long)]
        execs: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> std::process::ExitCode {
    // A closed pipe (`xtask … | head`) ends the program quietly, as it ends other command-line
    // tools, instead of a panic in `println!` (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before the first large buffer: every training step would otherwise fault its gradients
    // and optimizer state in afresh (landermt_model::heap).
    let kept = landermt_model::heap::keep_freed_memory();
    // SAFETY: no other thread exists yet.
    let spin = unsafe { landermt_model::blas::mkl::short_openmp_spin() };
    let cli = Cli::parse();
    init_logs(&cli);
    if spin {
        tracing::info!(GOMP_SPINCOUNT = landermt_model::blas::mkl::GOMP_SPINCOUNT, "MKL's OpenMP threads sleep sooner when idle (set GOMP_SPINCOUNT or OMP_WAIT_POLICY to choose)");
    }
    if kept {
        tracing::info!("freed memory is kept for reuse (glibc M_MMAP_MAX = 0, no trim)");
    } else {
        tracing::info!("freed memory goes back to the system (not glibc, or it refused the settings)");
    }
    // User errors (a bad path, a bad config) are messages, not crashes: print the cause chain,
    // without the backtrace anyhow would attach when RUST_BACKTRACE is set.
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `cargo xtask claims [--write]`, from the project root.
fn claims(write: bool) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if write {
        let changed = landermt_pipeline::claims::write(&root)?;
        println!("results blocks rewritten in: {}", if changed.is_empty() { "none (all current)".to_string() } else { changed.join(", ") });
        return Ok(());
    }
    let problems = landermt_pipeline::claims::check(&root)?;
    if !problems.is_empty() {
        anyhow::bail!("{} number(s) differ from the committed results:\n{}", problems.len(), problems.join("\n"));
    }
    println!("every results block and quoted sentence matches the committed results");
    Ok(())
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Pipeline { config, dry_run, force, from, only, pairs } => {
            let cfg = RunConfig::load(&config)?;
            run::run(&cfg, &run::Options { dry_run, force, from, only, pairs }, &mut |event| println!("{event}"))
        }
        Cmd::Claims { write } => claims(write),
        Cmd::Probe { config } => stamped(&config, "probe", stages::probe),
        Cmd::Score { config } => stamped(&config, "score", stages::score),
        Cmd::Route { config } => stamped(&config, "route", stages::route),
        Cmd::Train { config, method, direction, pair } => {
            let cfg = pair_view(RunConfig::load(&config)?, pair.as_deref().or(direction.as_deref()))?;
            let _lock = landermt_pipeline::RunLock::acquire(cfg.lock_dir())?;
            let system = system_arg(&cfg, method.as_deref(), direction.as_deref())?;
            stages::train(&cfg, system)?;
            mark(&cfg, &format!("train:{system}"))
        }
        Cmd::Eval { config } => stamped(&config, "eval", stages::eval),
        Cmd::Sweep { config, method, set, dev_lines, by } => sweep_cmd(&config, &method, &set, dev_lines, by),
        Cmd::Export { config, method, direction, pair, out, format } => {
            let cfg = pair_view(RunConfig::load(&config)?, pair.as_deref().or(direction.as_deref()))?;
            let system = system_arg(&cfg, method.as_deref(), direction.as_deref())?;
            stages::export(&cfg, system, export_direction(&cfg, pair.as_deref(), direction.as_deref())?, format, &out)
        }
        Cmd::Bleu { reference, hyp, tokenize, metric, lowercase, json } => bleu(&reference, &hyp, &tokenize, &metric, lowercase, json),
        Cmd::Plot { run } => plot(&run),
        Cmd::Forward { model, text, out, hidden, backend } => inspect::forward(&model, &text, &out, hidden, backend),
        Cmd::Generate { model, text, max_new_tokens, backend } => inspect::generate(&model, &text, max_new_tokens, backend),
        Cmd::FetchModel { name } => {
            let m = cache::known(&name).with_context(|| format!("unknown model `{name}`; known: {}", device::known_names()))?;
            let path = m.fetch()?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::FetchBlas { mkl } => {
            let vendor = if mkl { landermt_model::blas::Vendor::Mkl } else { landermt_model::blas::Vendor::Openblas };
            let path = vendor.fetch()?;
            let kernel = landermt_model::blas::use_library(vendor, &path, false)?;
            println!("{}\n{kernel}", path.display());
            Ok(())
        }
        Cmd::Bench { model, workload, vs_torch, python, out, backend, torch_device, dtype, vs_llamacpp } => {
            let models = if model.is_empty() { bench::BenchModel::ALL.to_vec() } else { model };
            let workloads = if workload.is_empty() { bench::Workload::ALL.to_vec() } else { workload };
            bench::bench(&bench::BenchArgs { models, workloads, vs_torch, python, models_dir: out.clone(), out, backend, torch_device, dtype, llamacpp: vs_llamacpp }).map(drop)
        }
        Cmd::BenchOne { workload, model, inputs, backend, dtype } => bench_one(workload, &model, &inputs, backend, dtype),
        Cmd::CheckGpu => check_gpu(),
        Cmd::FetchCudaRuntime => {
            let dir = landermt_model::cuda_runtime::fetch()?;
            eprintln!("NVRTC and the CUDA headers are in {}; before a run with backend = \"cuda\":", dir.display());
            println!("{}", landermt_model::cuda_runtime::exports(&dir));
            Ok(())
        }
        Cmd::DeviceCheck { python, out, no_bench } => device_check::run(&device_check::Options { python, out, no_bench }),
        Cmd::Fuzz { target, secs, execs, seed } => fuzz(&target, secs, execs, seed),
    }
}

/// `cargo xtask sweep`: one grid on a one-pair or joint config; prints the sweep's table.
fn sweep_cmd(config: &std::path::Path, method: &str, set: &str, dev_lines: Option<usize>, by: sweep::By) -> Result<()> {
    let cfg = RunConfig::load(config)?;
    if cfg.is_multi_pair() {
        bail!("{}: a sweep runs on one language pair or one joint model; sweep a config with that pair's directions, or set run.mode = \"joint\"", config.display());
    }
    let method: landermt_train::Method = method.parse().map_err(anyhow::Error::msg)?;
    let grid = sweep::Grid::parse(set)?;
    let out = sweep::run(config, &cfg, method, &grid, dev_lines, by, None)?;
    let dir = sweep::sweep_dir(&cfg, method, &grid.key());
    println!("{}", std::fs::read_to_string(dir.join("sweep.md"))?);
    println!("sweep: {} steps run, {} taken from the base run; best {} = {} → {}", out.ran.len(), out.adopted.len(), grid.key(), out.report.best, dir.display());
    Ok(())
}

/// `cargo xtask plot`: redraws a run folder's figures from its artifacts.
fn plot(run: &std::path::Path) -> Result<()> {
    if !run.is_dir() {
        bail!("{}: no such run directory", run.display());
    }
    let written = figures::write_all(run)?;
    if written.is_empty() {
        bail!("{}: no stage artifacts to plot (layers.json, neurons.*)", run.display());
    }
    written.iter().for_each(|p| println!("{}", p.display()));
    Ok(())
}

/// `bench-one`: one workload in a process of its own, so its peak memory is its own.
fn bench_one(workload: bench::Workload, model: &std::path::Path, inputs: &std::path::Path, backend: Backend, dtype: landermt_model::WeightDtype) -> Result<()> {
    let text = std::fs::read_to_string(inputs).with_context(|| format!("reading {}", inputs.display()))?;
    let inputs: bench::Inputs = serde_json::from_str(&text).with_context(|| format!("{}: not bench inputs", inputs.display()))?;
    println!("{}", serde_json::to_string(&bench::run_ours(workload, model, &inputs, backend, dtype)?)?);
    Ok(())
}

fn read_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).split('\n').map(|l| l.trim_end_matches('\r').to_string()).collect())
}

fn bleu(reference: &std::path::Path, hyp: &std::path::Path, tokenize: &str, metric: &str, lowercase: bool, json: bool) -> Result<()> {
    let (refs, hyps) = (read_lines(reference)?, read_lines(hyp)?);
    if refs.len() != hyps.len() {
        bail!("{} has {} lines but {} has {}: one hypothesis per reference line", hyp.display(), hyps.len(), reference.display(), refs.len());
    }
    let tok = landermt_eval::Tokenize::parse(tokenize).with_context(|| format!("unknown tokenizer `{tokenize}` (13a, zh, intl, char, none)"))?;
    let (name, score, signature) = match metric {
        "bleu" => {
            let b = landermt_eval::Bleu { tokenize: tok, lowercase, ..Default::default() };
            ("BLEU", b.corpus(&hyps, &refs).score, b.signature())
        }
        "chrf" | "chrf++" => {
            let mut c = if metric == "chrf" { landermt_eval::Chrf::CHRF } else { landermt_eval::Chrf::CHRF_PP };
            c.lowercase = lowercase;
            ("chrF2", c.corpus(&hyps, &refs), c.signature())
        }
        other => bail!("unknown metric `{other}` (bleu, chrf, chrf++)"),
    };
    let name = if metric == "chrf++" { "chrF2++" } else { name };
    if json {
        println!("{}", serde_json::json!({ "name": name, "score": score, "signature": signature, "implementation": "landermt" }));
    } else {
        println!("{name}|{signature} = {score:.2}  (landermt's implementation of sacreBLEU's definition)");
    }
    Ok(())
}

/// The config a command on one pair works with: over several pairs, the view of the pair
/// named (by `--pair`, or the pair of `--direction`), which must be given.
/// The direction whose routing a joint run's export takes: `--direction`, or the first of
/// `--pair`'s.
fn export_direction(cfg: &RunConfig, pair: Option<&str>, direction: Option<&str>) -> Result<Option<landermt_data::Direction>> {
    if !cfg.is_joint() {
        return Ok(None);
    }
    if let Some(d) = direction {
        return Ok(Some(d.parse()?));
    }
    pair.map(|p| Ok(cfg.pair(p)?.directions[0])).transpose()
}

fn pair_view(cfg: RunConfig, pair: Option<&str>) -> Result<RunConfig> {
    if !cfg.is_multi_pair() {
        return Ok(cfg);
    }
    let Some(name) = pair else {
        let pairs: Vec<String> = cfg.pairs().into_iter().map(|p| p.name).collect();
        bail!("{}: the run has several language pairs ({}); name one with --pair", cfg.source.display(), pairs.join(", "));
    };
    Ok(cfg.for_pair(&cfg.pair(name)?))
}

/// Runs a stage alone and stamps it, so that the pipeline finds it current. Over several
/// language pairs, the stage runs for every pair (`pipeline --only {step}`).
fn stamped(config: &std::path::Path, step: &str, stage: fn(&RunConfig) -> Result<()>) -> Result<()> {
    let cfg = RunConfig::load(config)?;
    if cfg.is_multi_pair() {
        let options = run::Options { only: Some(step.to_string()), force: true, ..Default::default() };
        return run::run(&cfg, &options, &mut |event| println!("{event}"));
    }
    let _lock = landermt_pipeline::RunLock::acquire(cfg.lock_dir())?;
    stage(&cfg)?;
    mark(&cfg, step)
}

/// Logs: on the terminal at `info` with `-v` (or as `RUST_LOG` says), else warnings only; for
/// `pipeline`, also everything at `info` into `{run}/pipeline.log`.
fn init_logs(cli: &Cli) {
    use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let level = if cli.verbose { "info" } else { "warn" };
    let console = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()));
    let file = match &cli.command {
        // A dry run only prints the plan: it creates nothing, not even the run folder.
        Cmd::Pipeline { config, dry_run: false, .. } => RunConfig::load(config).ok().and_then(|cfg| {
            std::fs::create_dir_all(&cfg.run.dir).ok()?;
            let f = std::fs::OpenOptions::new().create(true).append(true).open(cfg.run.dir.join("pipeline.log")).ok()?;
            Some(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(std::sync::Mutex::new(f)).with_filter(EnvFilter::new("info")))
        }),
        _ => None,
    };
    tracing_subscriber::registry().with(console).with(file).init();
}

/// `cargo xtask fuzz`: the fuzzer is a binary of its own (`landermt-fuzz`), the one program
/// whose global allocator records allocation sizes; this runs it with the same arguments.
fn fuzz(target: &str, secs: Option<f64>, execs: Option<u64>, seed: u64) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["run".to_string(), "--quiet".into(), "-p".into(), "landermt-fuzz".into(), "--".into(), "--target".into(), target.into(), "--seed".into(), seed.to_string()];
    secs.into_iter().for_each(|s| args.extend(["--secs".into(), s.to_string()]));
    execs.into_iter().for_each(|e| args.extend(["--execs".into(), e.to_string()]));
    let status = Command::new(cargo).args(&args).current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")).status()?;
    if !status.success() {
        bail!("the fuzzer failed ({status})");
    }
    Ok(())
}

fn check_gpu() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A target directory of its own: the GPU feature sets share nothing with the CPU build, and
    // a separate lock lets `cargo test` run meanwhile.
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/gpu-check");
    let run = |args: &[&str], env: &[(&str, &str)]| -> Result<()> {
        println!("$ {} cargo {}", env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "), args.join(" "));
        let status = Command::new(&cargo).args(args).envs(env.iter().copied()).env("CARGO_TARGET_DIR", &target).status()?;
        if !status.success() {
            bail!("cargo {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    // Offline: vendor/cubecl-cuda has no LLVM path to download, and .cargo/config.toml pins
    // the CUDA version cudarc binds (no toolkit needed).
    run(&["build", "-p", "xtask", "--features", "cuda,wgpu"], &[])?;
    println!("the cuda build succeeded: {}", target.join("debug/xtask").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bleu_refuses_misaligned_files_unknown_tokenizers_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let (r, h) = (dir.path().join("ref.txt"), dir.path().join("hyp.txt"));
        std::fs::write(&r, "Le chat dort.\nIl pleut.\n").unwrap();
        std::fs::write(&h, "Le chat dort.\n").unwrap();
        let err = format!("{:#}", bleu(&r, &h, "13a", "bleu", false, true).unwrap_err());
        assert!(err.contains("hyp.txt has 1 lines") && err.contains("ref.txt has 2"), "{err}");
        std::fs::write(&h, "Le chat dort.\nIl pleut.\n").unwrap();
        bleu(&r, &h, "13a", "chrf++", false, true).unwrap();
        assert!(format!("{:#}", bleu(&r, &h, "14a", "bleu", false, true).unwrap_err()).contains("unknown tokenizer `14a`"));
        assert!(format!("{:#}", bleu(&r, &h, "13a", "ter", false, true).unwrap_err()).contains("unknown metric `ter`"));
    }
}
