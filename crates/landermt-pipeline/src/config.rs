//! The run config: one TOML file whose sections are the stages' settings. Sections for the
//! stages after model loading are added with those stages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use itertools::Itertools;
use landermt_model::blas::GemmChoice;
use landermt_model::{Backend, LanguageModel, WeightDtype, cache};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The file the config was read from (what errors name); not part of any stage key.
    #[serde(skip)]
    pub source: std::path::PathBuf,
    /// For one pair of a run over several pairs ([`RunConfig::for_pair`]): the run's own
    /// folder, which holds the artifacts the pairs share (the score stage's `neurons.*`).
    #[serde(skip)]
    pub joint_dir: Option<std::path::PathBuf>,
    pub run: RunSection,
    pub model: ModelSection,
    #[serde(default)]
    pub prompt: PromptSection,
    #[serde(default)]
    pub probe: ProbeSection,
    #[serde(default)]
    pub score: ScoreSection,
    #[serde(default)]
    pub route: RouteSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub eval: EvalSection,
}

/// `[prompt]`: the translation template of training and evaluation (METHOD.md stages 4–5).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSection {
    /// `{Src}`, `{Tgt}` (language names), `{src}` and `{tgt}`: the prompt is the text before
    /// `{tgt}`, the training target the text from `{tgt}` on (default: ALMA's prompt).
    pub template: landermt_data::prompt::Template,
    /// `single`: every training example uses `template`; `mixed`: one of the ref-code's ten
    /// instruction templates per example. Dev loss and decoding use `template` either way.
    pub train: landermt_data::prompt::Mixing,
}

/// `[eval]`: stage 5.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Methods to evaluate (each needs its `train/{method}/delta.safetensors`, except `none`).
    pub methods: Vec<landermt_train::Method>,
    /// The method the others are compared with by paired bootstrap.
    pub baseline: landermt_train::Method,
    /// Directions decoded besides the run's, which no method trains on (forgetting: BLEU on an
    /// untrained direction, before and after).
    pub extra_directions: Vec<landermt_data::Direction>,
    /// The transfer matrix (paper fig. 3): this method is also trained on each of the run's
    /// directions alone (`train/{method}@{direction}/`), and each is decoded on every direction.
    pub transfer: Option<landermt_train::Method>,
    /// A method whose paired-bootstrap p-values against every other evaluated system are
    /// reported too (e.g. `landermt` against each baseline).
    pub compare: Option<landermt_train::Method>,
    pub test_sets: Vec<TestSet>,
    /// The decoding prompt, when not `[prompt] template` (e.g. the paper's
    /// `Translate "{src}" to {Tgt}.\n{tgt}`).
    pub template: Option<landermt_data::prompt::Template>,
    pub max_new_tokens: usize,
    /// `after-text` (a newline ends a translation once it has text; the hypothesis is the first
    /// non-empty line) or `first` (the cut at the first newline, as before 2026-12-06).
    pub newline: landermt_eval::decode::Newline,
    /// Never repeat an n-gram of this size within a hypothesis (0, the default: off), a guard
    /// against greedy decoding looping to `max_new_tokens`.
    pub no_repeat_ngram: usize,
    /// What the weights are stored in while decoding and measuring LM loss: unset, as loaded
    /// (`model.dtype`; a `full` system's in f32); `bf16`, every system's linear maps and
    /// embedding rounded to bf16 after its delta is merged, read in half the bytes (flex
    /// only). Keyed only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightDtype>,
    pub batch_size: usize,
    /// 1 for greedy decoding, more for beam search.
    pub beams: usize,
    /// In-context examples before each test sentence, for every system: the first `shots`
    /// pairs of `train.dev` for the direction (0: zero-shot).
    pub shots: usize,
    /// When above 0, one more system, `icl`: the untuned model with this many examples of
    /// `train.dev` before each test sentence (the in-context-learning baseline).
    pub icl_shots: usize,
    pub length_penalty: f64,
    /// Forgetting: mean LM loss of each method on held-out monolingual text of these languages.
    pub lm_languages: Vec<landermt_data::Language>,
    /// Sentences per language for the LM loss (the first `lm_n` of `lm_data`): 200 by default,
    /// enough for a paired bootstrap interval of the change against the baseline.
    pub lm_n: usize,
    pub lm_data: landermt_data::MonoSource,
    /// Bootstrap samples for confidence intervals and paired tests (seed 12345, as sacreBLEU).
    pub n_bootstrap: usize,
    /// Seeds the methods of `seeded` are trained with, each a system of its own
    /// (`landermt.seed2`); `train.seed`'s system is the method's own. The report gives each
    /// method's mean and spread over its seeds, and a claim "A beats B" holds only with the
    /// same sign on every seed and p < 0.05 on the pooled hypotheses. Keyed only when set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// The methods trained with every seed of `seeds` (empty: every trained method evaluated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeded: Vec<landermt_train::Method>,
    /// In one pair's view of a run over several pairs with `transfer = M`: M (trained on the
    /// pair) is also decoded on these directions, the other pairs' (the transfer across pairs).
    #[serde(skip)]
    pub cross: Option<(landermt_train::Method, Vec<landermt_data::Direction>)>,
}

/// A named test set: the first `n` pairs of `data` for each direction.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestSet {
    pub name: String,
    pub n: usize,
    pub data: landermt_data::ParallelSource,
    /// Decode only these of the evaluated directions (default: all of them).
    #[serde(default)]
    pub directions: Option<Vec<landermt_data::Direction>>,
}

impl TestSet {
    pub fn covers(&self, direction: landermt_data::Direction) -> bool {
        self.directions.as_ref().is_none_or(|d| d.contains(&direction))
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            methods: vec![landermt_train::Method::None, landermt_train::Method::Landermt],
            baseline: landermt_train::Method::None,
            extra_directions: Vec::new(),
            transfer: None,
            compare: None,
            test_sets: vec![
                TestSet { name: "flores".into(), n: 200, data: landermt_data::ParallelSource::Flores { dir: "data/flores200-devtest".into(), first: 501, last: 1012 }, directions: None },
                TestSet { name: "opus100".into(), n: 200, data: landermt_data::ParallelSource::Opus { dir: "data/opus100-test".into() }, directions: None },
            ],
            template: None,
            max_new_tokens: 128,
            newline: landermt_eval::decode::Newline::AfterText,
            no_repeat_ngram: 0,
            weights: None,
            batch_size: 8,
            beams: 1,
            shots: 0,
            icl_shots: 0,
            seeds: Vec::new(),
            seeded: Vec::new(),
            length_penalty: 1.0,
            lm_languages: Vec::new(),
            lm_n: 200,
            // FLORES devtest lines after the default test set's first 200 (501–700).
            lm_data: landermt_data::MonoSource::Flores { dir: "data/flores200-devtest".into(), first: 701, last: 1012 },
            cross: None,
            n_bootstrap: 1000,
        }
    }
}

/// `[train]`: stage 4 — the method, its data, and the optimisation settings
/// ([`landermt_train::Settings`], whose fields sit in this section too). `[train.methods.M]`
/// tables override any of these keys for method `M` ([`TrainSection::for_method`]).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub method: landermt_train::Method,
    /// Training pairs per direction (the first of `data`).
    pub pairs: usize,
    pub data: landermt_data::ParallelSource,
    /// Validation pairs per direction (the first of `dev`).
    pub dev_pairs: usize,
    pub dev: landermt_data::ParallelSource,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub epochs: usize,
    pub warmup_steps: usize,
    pub schedule: landermt_train::Schedule,
    pub max_len: usize,
    pub seed: u64,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    /// A joint run's optimizer of the LANDeRMT variants' slices: `lazy` (default) or `dense`
    /// (METHOD.md stage 4, joint mode). Keyed only when `dense`.
    #[serde(skip_serializing_if = "landermt_train::trainer::OptimizerKind::is_lazy")]
    pub optimizer: landermt_train::trainer::OptimizerKind,
    /// LoRA rank, alpha and target maps (`q k v o gate up down`), for `lora` and `adapter-lora`.
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_targets: Vec<landermt_train::delta::Target>,
    /// Bottleneck width of the adapters, for `adapter` and `adapter-lora`.
    pub adapter_size: usize,
    /// Per-method overrides of the keys above, e.g. `[train.methods.lora] lr = 1e-3`.
    pub methods: std::collections::BTreeMap<landermt_train::Method, toml::Table>,
}

impl Default for TrainSection {
    fn default() -> Self {
        let tsv = |split: &str| landermt_data::ParallelSource::Tsv { path: format!("data/corpus/{split}.en-fr.tsv").into(), src_lang: "en".into(), tgt_lang: "fr".into() };
        let s = landermt_train::Settings::default();
        let a = landermt_train::added::AddedSettings::default();
        Self {
            lora_rank: a.lora_rank,
            lora_alpha: a.lora_alpha,
            lora_targets: a.lora_targets,
            adapter_size: a.adapter_size,
            method: Default::default(),
            pairs: 500,
            data: tsv("train"),
            dev_pairs: 50,
            dev: tsv("dev"),
            lr: s.lr,
            weight_decay: s.weight_decay,
            batch_size: s.batch_size,
            grad_accum: s.grad_accum,
            epochs: s.epochs,
            warmup_steps: s.warmup_steps,
            schedule: s.schedule,
            max_len: s.max_len,
            seed: s.seed,
            eval_every: s.eval_every,
            checkpoint_every: s.checkpoint_every,
            optimizer: s.optimizer,
            methods: Default::default(),
        }
    }
}

impl TrainSection {
    /// The settings `method` trains with: this section with `[train.methods.{method}]`'s keys
    /// put over it, `method` set and no overrides left. An error names the key that cannot be
    /// overridden or does not exist.
    pub fn for_method(&self, method: landermt_train::Method) -> std::result::Result<TrainSection, (Option<String>, String)> {
        let plain = TrainSection { methods: Default::default(), method, ..self.clone() };
        let Some(overrides) = self.methods.get(&method) else { return Ok(plain) };
        let mut table = toml::Table::try_from(&plain).map_err(|e| (None, e.to_string()))?;
        for (key, value) in overrides {
            if key == "method" || key == "methods" || !table.contains_key(key) {
                let known: Vec<&str> = table.keys().map(String::as_str).filter(|k| *k != "method").collect();
                return Err((Some(key.clone()), format!("`{key}` is not a [train] key a method can override; known: {}", known.join(", "))));
            }
            table.insert(key.clone(), value.clone());
        }
        table.remove("methods");
        table.try_into().map_err(|e: toml::de::Error| (None, e.message().to_string()))
    }

    pub fn added(&self) -> landermt_train::added::AddedSettings {
        landermt_train::added::AddedSettings { lora_rank: self.lora_rank, lora_alpha: self.lora_alpha, lora_targets: self.lora_targets.clone(), adapter_size: self.adapter_size }
    }

    pub fn settings(&self) -> landermt_train::Settings {
        landermt_train::Settings {
            lr: self.lr,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            epochs: self.epochs,
            warmup_steps: self.warmup_steps,
            schedule: self.schedule,
            max_len: self.max_len,
            seed: self.seed,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            optimizer: self.optimizer,
        }
    }
}

/// `[route]`: stage 3 (METHOD.md eq. 4–5).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteSection {
    /// `taylor` (default) | `static` | `learned` | `off`.
    pub car: landermt_model::nn::CarMode,
    /// `paper` (default) or `identity`: a trained λ per layer, 0 at the start, scales the CAR
    /// shares so that the routed model starts as the pretrained one. Keyed only when `identity`.
    #[serde(skip_serializing_if = "landermt_model::nn::Start::is_paper")]
    pub start: landermt_model::nn::Start,
    /// Sentences of each language of the pair on which the routed model is compared with the
    /// base model before training (default: FLORES-200 devtest lines 201–220, which stage 2's
    /// default 200 sentences do not use).
    pub check: landermt_data::MonoSource,
}

impl Default for RouteSection {
    fn default() -> Self {
        Self { car: Default::default(), start: Default::default(), check: landermt_data::MonoSource::Flores { dir: "data/flores200-devtest".into(), first: 201, last: 220 } }
    }
}

/// `[score]`: stage 2 (METHOD.md eq. 2–3).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreSection {
    /// The languages compared (default: the languages of the run's directions, then
    /// `extra_languages`).
    pub languages: Option<Vec<landermt_data::Language>>,
    /// Added to the default languages (ignored when `languages` is given).
    pub extra_languages: Vec<landermt_data::Language>,
    /// Monolingual sentences per language.
    pub n: usize,
    /// Share of each module's units that are language-general (METHOD.md ε).
    pub epsilon: f64,
    /// Sentences per forward and backward pass.
    pub batch_size: usize,
    /// Where the sentences come from (default: one side of FLORES-200 devtest lines 1–500).
    pub data: landermt_data::MonoSource,
    /// `taylor` (default) or `random`: Taylor's counts per layer and module, units drawn with
    /// `seed` (the control). Keyed only when not `taylor`.
    #[serde(skip_serializing_if = "landermt_score::ScoreMethod::is_taylor")]
    pub method: landermt_score::ScoreMethod,
    /// The random control's seed (default 1). Keyed only when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// LAPE's thresholds (`method = "lape"`): `top_rate` 0.01, `filter_rate` 0.95, `bar_rate`
    /// 0.95, as the reference. Keyed only when `method = "lape"`.
    #[serde(skip_serializing_if = "ScoreSection::lape_unused")]
    pub lape: landermt_score::lape::LapeSettings,
}

impl ScoreSection {
    fn lape_unused(s: &landermt_score::lape::LapeSettings) -> bool {
        *s == landermt_score::lape::LapeSettings::default()
    }
}

impl Default for ScoreSection {
    fn default() -> Self {
        Self {
            languages: None,
            extra_languages: Vec::new(),
            n: 200,
            epsilon: 0.9,
            batch_size: 8,
            data: landermt_data::MonoSource::Flores { dir: "data/flores200-devtest".into(), first: 1, last: 500 },
            method: Default::default(),
            seed: None,
            lape: Default::default(),
        }
    }
}

/// `[probe]`: stage 1 (METHOD.md eq. 1).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSection {
    /// Parallel sentences per direction.
    pub n: usize,
    /// Number of layers to select.
    pub k: usize,
    pub rule: landermt_probe::Rule,
    /// Prompts per forward pass.
    pub batch_size: usize,
    /// Where the sentences come from (default: FLORES-200 devtest lines 1–500).
    pub data: landermt_data::ParallelSource,
    /// Blocks named by hand, 0-based, instead of the probe's choice (rule `given`; `k` and
    /// `rule` are then ignored). An ablation of where the method trains: the curves are still
    /// measured and plotted. Left out of the stage hash when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<usize>>,
}

impl Default for ProbeSection {
    fn default() -> Self {
        Self { n: 500, k: 4, rule: landermt_probe::Rule::Pairs, batch_size: 8, data: landermt_data::ParallelSource::Flores { dir: "data/flores200-devtest".into(), first: 1, last: 500 }, layers: None }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub name: String,
    /// Where the run's artifacts go.
    pub dir: PathBuf,
    /// Translation directions `src-tgt` (ISO 639-1 codes).
    pub directions: Vec<landermt_data::Direction>,
    /// Over several language pairs: `per-pair` (default; a run of its own per pair) or `joint`
    /// (one model for every direction, as the paper trains). Keyed only when `joint`.
    #[serde(default, skip_serializing_if = "RunMode::is_per_pair")]
    pub mode: RunMode,
}

/// `run.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    #[default]
    PerPair,
    Joint,
}

impl RunMode {
    pub fn is_per_pair(&self) -> bool {
        *self == RunMode::PerPair
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A known model fetched into the cache (e.g. `gemma-3-270m`)…
    pub name: Option<String>,
    /// …or a Hugging Face folder or `.gguf` file.
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub backend: Backend,
    /// The f32 GEMM of the `flex` backend: `auto` (the fastest of the pure-Rust kernel,
    /// OpenBLAS and MKL on this machine, measured once), `openblas`, `mkl` or `rust`.
    /// `$LANDERMT_GEMM` overrides it. Not part of the stage keys (serialising skips it): like
    /// the thread count, it changes only rounding.
    #[serde(default, skip_serializing)]
    pub gemm: GemmChoice,
    /// What the frozen weights are stored in: `f32` (default) or `bf16`, which halves their
    /// memory while products still sum in f32 (flex only). Part of the stage keys when not f32.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub dtype: WeightDtype,
}

fn is_f32(d: &WeightDtype) -> bool {
    *d == WeightDtype::F32
}

impl RunConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// A config from its TOML `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let text = text.to_string();
        // Type errors (an unknown key, a wrong type, an unknown language or method) come from
        // serde with the line and what is allowed.
        let mut cfg: RunConfig = match toml::from_str(&text) {
            Ok(cfg) => cfg,
            Err(e) => {
                let line = e.span().map(|s| format!("{}:", text[..s.start].matches('\n').count() + 1)).unwrap_or_default();
                bail!("{}:{line} invalid config: {}", path.display(), e.message().trim_end());
            }
        };
        // The checks serde cannot make name the file, line, section and key too.
        let at = |section: &str, key: Option<&str>| match line_of(&text, section, key) {
            Some(n) => format!("{}:{n}: [{section}]{}", path.display(), key.map(|k| format!(" {k}")).unwrap_or_default()),
            None => format!("{}: [{section}]{}", path.display(), key.map(|k| format!(" {k}")).unwrap_or_default()),
        };
        check_run(&cfg, &at)?;
        check_eval(&cfg, &at)?;
        check_train_sections(&cfg, &at)?;
        check_sizes(&cfg, &at)?;
        check_probe(&cfg, &at)?;
        check_model(&cfg, &at)?;
        cfg.source = path.to_path_buf();
        Ok(cfg)
    }
}

/// Where a key is: `file:line: [section] key`, for the checks' errors.
type At<'a> = dyn Fn(&str, Option<&str>) -> String + 'a;

/// Directions listed once each, and languages the score can take.
fn check_run(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    if cfg.run.directions.is_empty() {
        bail!("{}: no directions; list at least one, e.g. [\"en-fr\", \"fr-en\"]", at("run", Some("directions")));
    }
    if let Some(d) = cfg.run.directions.iter().enumerate().find_map(|(i, d)| cfg.run.directions[..i].contains(d).then_some(d)) {
        bail!("{}: `{d}` is listed twice", at("run", Some("directions")));
    }
    if let Err(e) = landermt_score::check(&cfg.score_languages(), cfg.score.epsilon) {
        let key = if cfg.score.epsilon.is_finite() && (0.0..=1.0).contains(&cfg.score.epsilon) { "languages" } else { "epsilon" };
        bail!("{}: {e}", at("score", Some(key)));
    }
    Ok(())
}

/// What `[eval]` names: a method that trains, test sets of evaluated directions with distinct names, a compared method that is evaluated, and enough LM sentences.
fn check_eval(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    if cfg.eval.transfer == Some(landermt_train::Method::None) {
        bail!("{}: \"none\" trains nothing; name a method (e.g. \"landermt\") or leave it out", at("eval", Some("transfer")));
    }
    let evaluated = cfg.eval_directions();
    for t in &cfg.eval.test_sets {
        if let Some(d) = t.directions.iter().flatten().find(|d| !evaluated.contains(d)) {
            bail!("{}: test set `{}` lists {d}, which is neither a run direction nor in extra_directions", at("eval", Some("test_sets")), t.name);
        }
    }
    if let Some(m) = cfg.eval.compare
        && !cfg.eval.methods.contains(&m)
    {
        bail!("{}: `{}` is not in [eval] methods, so it is not evaluated", at("eval", Some("compare")), m.name());
    }
    if let Some(t) = cfg.eval.test_sets.iter().enumerate().find_map(|(i, t)| cfg.eval.test_sets[..i].iter().any(|u| u.name == t.name).then_some(t)) {
        bail!("{}: two test sets are named `{}`; names must differ (they name the hypothesis files)", at("eval", Some("test_sets")), t.name);
    }
    if let landermt_data::MonoSource::Flores { first, last, .. } = cfg.eval.lm_data {
        let lines = (last + 1).saturating_sub(first);
        if !cfg.eval.lm_languages.is_empty() && lines < cfg.eval.lm_n {
            bail!("{}: {} sentences per language, but lm_data holds {lines} (lines {first}–{last}); widen lm_data or lower lm_n", at("eval", Some("lm_n")), cfg.eval.lm_n);
        }
    }
    Ok(())
}

/// `[train]` and each method's effective section.
fn check_train_sections(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    check_train(&cfg.train, "train", &at)?;
    for &method in cfg.train.methods.keys() {
        let section = format!("train.methods.{}", method.name());
        let t = cfg.train.for_method(method).map_err(|(key, e)| anyhow::anyhow!("{}: {e}", at(&section, key.as_deref())))?;
        check_train(&t, &section, &at)?;
    }
    Ok(())
}

/// Counts and sizes that must be at least 1.
fn check_sizes(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    for (section, key, value) in [
        ("probe", "n", cfg.probe.n),
        ("probe", "k", cfg.probe.k),
        ("probe", "batch_size", cfg.probe.batch_size),
        ("score", "n", cfg.score.n),
        ("score", "batch_size", cfg.score.batch_size),
        ("eval", "batch_size", cfg.eval.batch_size),
        ("eval", "beams", cfg.eval.beams),
        ("eval", "max_new_tokens", cfg.eval.max_new_tokens),
    ] {
        if value == 0 {
            bail!("{}: must be at least 1", at(section, Some(key)));
        }
    }
    Ok(())
}

/// Blocks given when the probe's rule needs them.
fn check_probe(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    match &cfg.probe.layers {
        Some(blocks) if blocks.is_empty() => bail!("{}: an empty list; name the blocks, e.g. layers = [0, 1, 2], or leave it out (the probe's choice)", at("probe", Some("layers"))),
        None if cfg.probe.rule == landermt_probe::Rule::Given => {
            bail!("{}: rule \"given\" needs the blocks in probe.layers, e.g. layers = [0, 1, 2]", at("probe", Some("rule")))
        }
        _ => {}
    }
    Ok(())
}

/// The model named once, and weight precisions the backend can run.
fn check_model(cfg: &RunConfig, at: &At<'_>) -> Result<()> {
    if cfg.model.dtype != WeightDtype::F32 && cfg.model.backend != Backend::Flex {
        bail!("{}: `{}` runs on the flex backend only (its mixed-precision products are flex's); use dtype = \"f32\" or backend = \"flex\"", at("model", Some("dtype")), cfg.model.dtype);
    }
    match cfg.eval.weights {
        Some(WeightDtype::F32) if cfg.model.dtype != WeightDtype::F32 => {
            bail!("{}: f32 cannot undo the rounding of weights loaded in `{}` (model.dtype); leave `weights` out or set model.dtype = \"f32\"", at("eval", Some("weights")), cfg.model.dtype)
        }
        Some(d) if d != WeightDtype::F32 && cfg.model.backend != Backend::Flex => {
            bail!("{}: `{d}` runs on the flex backend only (its mixed-precision products are flex's); leave `weights` out or use backend = \"flex\"", at("eval", Some("weights")))
        }
        _ => {}
    }
    match (&cfg.model.name, &cfg.model.path) {
        (Some(_), Some(_)) | (None, None) => bail!("{}: needs exactly one of `name` (a known model: {}) or `path`", at("model", None), crate::device::known_names()),
        (Some(n), None) if cache::known(n).is_none() => bail!("{}: unknown model name `{n}`; known: {}, or give `path` instead", at("model", Some("name")), crate::device::known_names()),
        _ => {}
    }
    Ok(())
}

/// The checks of a `[train]` section (or a method's effective one) that serde cannot make.
fn check_train(t: &TrainSection, section: &str, at: &At<'_>) -> Result<()> {
    for (key, value) in [("pairs", t.pairs), ("batch_size", t.batch_size), ("grad_accum", t.grad_accum), ("epochs", t.epochs)] {
        if value == 0 {
            bail!("{}: must be at least 1", at(section, Some(key)));
        }
    }
    if !(t.lr.is_finite() && t.lr > 0.0) {
        bail!("{}: the learning rate must be a positive number, not {}", at(section, Some("lr")), t.lr);
    }
    Ok(())
}

/// The 1-based line of `key` in `[section]` of a TOML text, or of the section's header when
/// the key is not written there (a default). `None` when the section is not written either.
fn line_of(text: &str, section: &str, key: Option<&str>) -> Option<usize> {
    let (mut current, mut header) = (String::new(), None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = name.trim().to_string();
            if current == section {
                header = Some(i + 1);
            }
            continue;
        }
        if current == section
            && let Some(k) = key
            && line.strip_prefix(k).is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    header
}

impl RunConfig {
    /// The `[train]` settings of `method`, its `[train.methods.*]` overrides applied.
    pub fn train_for(&self, method: landermt_train::Method) -> TrainSection {
        self.train.for_method(method).unwrap_or_else(|(_, e)| panic!("checked on load: {e}"))
    }

    /// The decoding template: `[eval] template`, else `[prompt] template`.
    pub fn eval_template(&self) -> &landermt_data::prompt::Template {
        self.eval.template.as_ref().unwrap_or(&self.prompt.template)
    }

    /// The languages of the directions, in order of first appearance.
    pub fn directions(&self) -> Vec<landermt_data::Direction> {
        self.run.directions.clone()
    }

    /// `score.languages`, or the run's languages followed by `score.extra_languages`.
    pub fn score_languages(&self) -> Vec<landermt_data::Language> {
        if let Some(l) = &self.score.languages {
            return l.clone();
        }
        self.directions().iter().flat_map(|d| [d.src, d.tgt]).chain(self.score.extra_languages.iter().copied()).unique().collect()
    }
}

impl RunConfig {
    /// The systems stage 5 evaluates, baseline first: `eval.methods` trained on all the run's
    /// directions, then `eval.transfer` trained on each direction alone.
    pub fn systems(&self) -> Vec<crate::system::System> {
        use crate::system::System;
        let mut out = vec![System::all(self.eval.baseline)];
        for &m in &self.eval.methods {
            if m != self.eval.baseline {
                out.push(System::all(m));
            }
        }
        if let Some(m) = self.eval.transfer {
            out.extend(self.directions().into_iter().map(|d| System { only: Some(d), ..System::all(m) }));
        }
        for m in self.seeded_methods() {
            out.extend(self.eval.seeds.iter().filter(|&&s| s != self.train_for(m).seed).map(|&s| System::seeded(m, s)));
        }
        if self.eval.icl_shots > 0 {
            out.push(System::icl());
        }
        out
    }

    /// Whether the score stage writes `lape.json`: for `score.method = "lape"` or a `lape` system.
    pub fn needs_lape(&self) -> bool {
        self.score.method == landermt_score::ScoreMethod::Lape || self.eval.methods.contains(&landermt_train::Method::Lape)
    }

    /// The methods `[eval] seeds` trains again: `[eval] seeded`, or every trained method of
    /// `[eval] methods` when that is empty.
    pub fn seeded_methods(&self) -> Vec<landermt_train::Method> {
        if self.eval.seeds.is_empty() {
            return Vec::new();
        }
        let trained = self.eval.methods.iter().copied().filter(|m| *m != landermt_train::Method::None && *m != self.eval.baseline);
        if self.eval.seeded.is_empty() { trained.collect() } else { self.eval.seeded.clone() }
    }

    /// The run's directions, then `eval.extra_directions` not among them.
    pub fn eval_directions(&self) -> Vec<landermt_data::Direction> {
        self.directions().into_iter().chain(self.eval.extra_directions.iter().copied()).unique().collect()
    }
}

impl ModelSection {
    pub fn describe(&self) -> String {
        match (&self.name, &self.path) {
            (Some(n), _) => n.clone(),
            (_, Some(p)) => p.display().to_string(),
            _ => unreachable!("validated on load"),
        }
    }

    /// The backend's device, with the f32 GEMM kernel selected for `flex` (`auto`: on the
    /// model's products, if it is already fetched).
    pub fn device(&self) -> Result<burn::tensor::Device> {
        let model = self.resolve(false).ok();
        crate::device::gemm_device(self.backend, &self.gemm, model.as_deref())
    }

    /// The model, fetched if need be, on the configured device (with autodiff if `autodiff`),
    /// its frozen weights in `model.dtype`.
    pub fn load(&self, autodiff: bool) -> Result<LanguageModel> {
        self.load_in(autodiff, self.dtype)
    }

    /// As [`ModelSection::load`], the weights in `dtype` (f32 for methods that train them all).
    pub fn load_in(&self, autodiff: bool, dtype: WeightDtype) -> Result<LanguageModel> {
        let device = if autodiff { self.device()?.autodiff() } else { self.device()? };
        Ok(LanguageModel::load_as(self.resolve(true)?, &device, dtype)?)
    }

    /// The model's path, fetching a known model into the cache if `fetch` and it is missing.
    pub fn resolve(&self, fetch: bool) -> Result<PathBuf> {
        match (&self.name, &self.path) {
            (_, Some(p)) => Ok(p.clone()),
            (Some(n), None) => {
                let m = cache::known(n).expect("validated on load");
                if fetch { Ok(m.fetch()?) } else { crate::device::resolve_model(n) }
            }
            _ => unreachable!("validated on load"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<RunConfig> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.toml");
        std::fs::write(&p, text).unwrap();
        RunConfig::load(&p)
    }

    const GOOD: &str = "[run]\nname = \"x\"\ndir = \"runs/x\"\ndirections = [\"en-fr\", \"fr-en\"]\n[model]\nname = \"gemma-3-270m\"\n";

    #[test]
    fn weight_dtype_is_validated_and_keyed_only_when_not_f32() {
        let f32_cfg = load_str(GOOD).unwrap();
        assert_eq!(f32_cfg.model.dtype, WeightDtype::F32);
        // Runs made before `dtype` existed keep their stage keys.
        assert!(!serde_json::to_string(&f32_cfg.model).unwrap().contains("dtype"));
        let bf16 = load_str(&format!("{GOOD}dtype = \"bf16\"\n")).unwrap();
        assert_eq!(bf16.model.dtype, WeightDtype::Bf16);
        assert!(serde_json::to_string(&bf16.model).unwrap().contains("\"dtype\":\"bf16\""));
        let err = format!("{:#}", load_str(&format!("{GOOD}dtype = \"bf16\"\nbackend = \"wgpu\"\n")).unwrap_err());
        assert!(err.contains(":7: [model] dtype") && err.contains("flex"), "{err}");
        let err = format!("{:#}", load_str(&format!("{GOOD}dtype = \"f16\"\n")).unwrap_err());
        assert!(err.contains(":7:") && err.contains("`f16`") && err.contains("`bf16`"), "{err}");
    }

    #[test]
    fn eval_weights_are_validated_and_keyed_only_when_set() {
        assert!(!serde_json::to_string(&load_str(GOOD).unwrap().eval).unwrap().contains("weights"));
        let bf16 = load_str(&format!("{GOOD}[eval]\nweights = \"bf16\"\n")).unwrap();
        assert_eq!(bf16.eval.weights, Some(WeightDtype::Bf16));
        assert!(serde_json::to_string(&bf16.eval).unwrap().contains("\"weights\":\"bf16\""));
        let err = format!("{:#}", load_str(&format!("{GOOD}dtype = \"bf16\"\n[eval]\nweights = \"f32\"\n")).unwrap_err());
        assert!(err.contains(":9: [eval] weights") && err.contains("cannot undo"), "{err}");
        let err = format!("{:#}", load_str(&format!("{GOOD}backend = \"wgpu\"\n[eval]\nweights = \"bf16\"\n")).unwrap_err());
        assert!(err.contains(":9: [eval] weights") && err.contains("flex"), "{err}");
    }

    #[test]
    fn shipped_configs_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for entry in std::fs::read_dir(root).unwrap() {
            let p = entry.unwrap().path();
            RunConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        }
        let cfg = load_str(&format!("{GOOD}[score]\nextra_languages = [\"de\", \"zh\"]\n")).unwrap();
        assert_eq!(cfg.score_languages().iter().map(|l| l.code).collect::<Vec<_>>(), ["en", "fr", "de", "zh"]);
    }

    #[test]
    fn per_method_tables_override_train_keys_for_that_method_only() {
        use landermt_train::Method;
        let cfg = load_str(&format!("{GOOD}[train]\nlr = 2e-4\nepochs = 2\n[train.methods.lora]\nlr = 1e-3\nlora_rank = 16\n[train.methods.full]\nlr = 1e-5\nbatch_size = 2\n")).unwrap();
        let (lora, full, landermt) = (cfg.train_for(Method::Lora), cfg.train_for(Method::Full), cfg.train_for(Method::Landermt));
        assert_eq!((lora.lr, lora.epochs, lora.lora_rank, lora.batch_size), (1e-3, 2, 16, cfg.train.batch_size));
        assert_eq!((full.lr, full.epochs, full.batch_size, full.lora_rank), (1e-5, 2, 2, cfg.train.lora_rank));
        assert_eq!((landermt.lr, landermt.epochs), (2e-4, 2));
        assert!(lora.methods.is_empty() && lora.method == Method::Lora);
        // Only the overridden method's training step goes stale.
        let key = |cfg: &RunConfig, m: Method| crate::plan::key(cfg, &crate::plan::train_step(cfg, crate::system::System::all(m))).unwrap();
        let faster = load_str(&format!("{GOOD}[train]\nlr = 2e-4\nepochs = 2\n[train.methods.lora]\nlr = 3e-3\nlora_rank = 16\n[train.methods.full]\nlr = 1e-5\nbatch_size = 2\n")).unwrap();
        assert_ne!(key(&cfg, Method::Lora), key(&faster, Method::Lora));
        assert_eq!(key(&cfg, Method::Full), key(&faster, Method::Full));
        assert_eq!(key(&cfg, Method::Landermt), key(&faster, Method::Landermt));
    }

    #[test]
    fn the_gemm_kernel_is_parsed_but_no_part_of_any_stage_key() {
        let auto = load_str(GOOD).unwrap();
        let rust = load_str(&GOOD.replace("[model]\n", "[model]\ngemm = \"rust\"\n")).unwrap();
        assert_eq!((&auto.model.gemm, &rust.model.gemm), (&GemmChoice::Auto, &GemmChoice::Rust));
        for (a, b) in crate::plan::steps(&auto).iter().zip(crate::plan::steps(&rust).iter()) {
            assert_eq!(crate::plan::key(&auto, a).unwrap(), crate::plan::key(&rust, b).unwrap(), "{}", a.name);
        }
        let mkl = load_str(&GOOD.replace("[model]\n", "[model]\ngemm = \"mkl\"\n")).unwrap();
        assert_eq!(mkl.model.gemm, GemmChoice::Mkl);
        let err = load_str(&GOOD.replace("[model]\n", "[model]\ngemm = \"blis\"\n")).unwrap_err().to_string();
        assert!(err.contains("run.toml:6: invalid config") && err.contains("blis"), "{err}");
    }

    #[test]
    fn the_prompt_template_is_checked_on_load_and_hashed() {
        use landermt_train::Method;
        let cfg = load_str(GOOD).unwrap();
        assert_eq!(cfg.eval_template().as_str(), landermt_data::prompt::DEFAULT_TEMPLATE);
        let paper = load_str(&format!("{GOOD}[prompt]\ntrain = \"mixed\"\n[eval]\ntemplate = \"Translate \\\"{{src}}\\\" to {{Tgt}}.\\n{{tgt}}\"\n")).unwrap();
        assert_eq!(paper.eval_template().as_str(), landermt_data::prompt::PAPER_TEST_TEMPLATE);
        assert_eq!(paper.prompt.train, landermt_data::prompt::Mixing::Mixed);
        let key = |cfg: &RunConfig| crate::plan::key(cfg, &crate::plan::train_step(cfg, crate::system::System::all(Method::Lora))).unwrap();
        assert_ne!(key(&cfg), key(&paper), "the training template is part of the training key");
        let eval = |cfg: &RunConfig| crate::plan::key(cfg, crate::plan::steps(cfg).last().unwrap()).unwrap();
        let other = load_str(&format!("{GOOD}[eval]\ntemplate = \"{{src}} = {{tgt}}\"\n")).unwrap();
        assert_ne!(eval(&cfg), eval(&other), "the decoding template is part of the eval key");
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let cases = [
            (GOOD.replace("en-fr\"", "en-xx\""), "run.toml:4: invalid config"),
            (GOOD.replace("en-fr\"", "en-xx\""), "unknown language code `xx`"),
            (GOOD.replace("en-fr\"", "enfr\""), "enfr"),
            (format!("{GOOD}[eval]\nextra_directions = [\"en-xx\"]\n"), "xx"),
            (format!("{GOOD}[eval]\ntransfer = \"qlora\"\n"), "qlora"),
            (format!("{GOOD}[eval]\ntest_sets = [{{ name = \"a\", n = 1, data = {{ kind = \"opus\", dir = \"d\" }}, directions = [\"en-de\"] }}]\n"), "test set `a` lists en-de"),
            (format!("{GOOD}[eval]\nmethods = [\"none\", \"lora\"]\ncompare = \"landermt\"\n"), "run.toml:9: [eval] compare: `landermt` is not in [eval] methods"),
            (GOOD.replace("name = \"gemma-3-270m\"", "name = \"gpt-5\""), "run.toml:6: [model] name: unknown model name `gpt-5`; known: gemma-3-270m"),
            (GOOD.replace("name = \"gemma-3-270m\"", "name = \"gemma-3-270m\"\npath = \"m\""), "exactly one"),
            (GOOD.replace("[model]", "[model]\nbackend = \"tpu\""), "tpu"),
            (GOOD.replace("[model]", "[model]\nbackedn = \"flex\""), "backedn"),
            (format!("{GOOD}[score]\nlanguages = [\"en\", \"xx\"]\n"), "unknown language code `xx`"),
            (format!("{GOOD}[score]\nlanguages = [\"en\"]\n"), "at least two languages"),
            (format!("{GOOD}[score]\nepsilon = 1.5\n"), "run.toml:8: [score] epsilon: ε = 1.5"),
            (format!("{GOOD}[score]\nlanguages = [\"en\", \"de\", \"de\"]\n"), "`de` is listed twice"),
            (format!("{GOOD}[train]\nlrr = 0.1\n"), "lrr"),
            (format!("{GOOD}[train]\nmethod = \"qlora\"\n"), "qlora"),
            (format!("{GOOD}[route]\ncar = \"dynamic\"\n"), "dynamic"),
            ("[run\nname=".to_string(), "invalid config"),
            (format!("{GOOD}[train]\nbatch_size = 4\nepochs = 0\n"), "run.toml:9: [train] epochs: must be at least 1"),
            (format!("{GOOD}[train]\nlr = -1.0\n"), "run.toml:8: [train] lr"),
            (format!("{GOOD}[probe]\nrule = \"given\"\n"), "run.toml:8: [probe] rule: rule \"given\" needs the blocks in probe.layers"),
            (format!("{GOOD}[probe]\nrule = \"given\"\nlayers = []\n"), "run.toml:9: [probe] layers: an empty list"),
            (format!("{GOOD}[probe]\nlayers = []\n"), "run.toml:8: [probe] layers: an empty list"),
            (format!("{GOOD}[prompt]\ntemplate = \"{{Src}}: {{src}}\"\n"), "run.toml:8: invalid config: the template has no `{tgt}`"),
            (format!("{GOOD}[prompt]\ntemplate = \"{{Tgt}}: {{tgt}}\"\n"), "run.toml:8: invalid config: the template has no `{src}`"),
            (format!("{GOOD}[eval]\nbatch_size = 2\ntemplate = \"{{Source}}: {{src}} {{tgt}}\"\n"), "run.toml:9: invalid config: unknown placeholder `{Source}`"),
            (format!("{GOOD}[prompt]\ntrain = \"some\"\n"), "run.toml:8: invalid config"),
            (format!("{GOOD}[train]\nlr = 1e-4\n[train.methods.lora]\nlrr = 1e-3\n"), "run.toml:10: [train.methods.lora] lrr: `lrr` is not a [train] key"),
            (format!("{GOOD}[train.methods.lora]\nmethod = \"full\"\n"), "run.toml:8: [train.methods.lora] method"),
            (format!("{GOOD}[train.methods.full]\nlr = 0.0\n"), "run.toml:8: [train.methods.full] lr: the learning rate must be a positive number"),
            (format!("{GOOD}[train.methods.full]\nepochs = 0\n"), "run.toml:8: [train.methods.full] epochs: must be at least 1"),
            (format!("{GOOD}[train.methods.qlora]\nlr = 1e-3\n"), "qlora"),
            (format!("{GOOD}[train.methods.lora]\nlr = \"fast\"\n"), "[train.methods.lora]"),
            (GOOD.replace("[\"en-fr\", \"fr-en\"]", "[\"en-fr\", \"en-fr\"]"), "run.toml:4: [run] directions: `en-fr` is listed twice"),
            (GOOD.replace("[\"en-fr\", \"fr-en\"]", "[]"), "run.toml:4: [run] directions: no directions"),
            (
                format!("{GOOD}[eval]\ntest_sets = [{{ name = \"a\", n = 1, data = {{ kind = \"opus\", dir = \"d\" }} }}, {{ name = \"a\", n = 2, data = {{ kind = \"opus\", dir = \"d\" }} }}]\n"),
                "two test sets are named `a`",
            ),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", load_str(&text).unwrap_err());
            assert!(err.contains(want), "expected `{want}` in: {err}");
        }
    }
}
