//! # landermt-score — stage 2: language awareness of neurons
//!
//! Reads ∂L/∂h through zero probe leaves at every scored module (METHOD.md eq. 2–3), sums the
//! Taylor score `|∂L/∂h · h|` per language ([`taylor`]), splits each module's units into
//! language-general and language-specific by the variance across languages ([`split`], ε = 0.9),
//! and writes `neurons.safetensors` and `neurons.json` ([`artifact`]).
//!
//! Stage 2 on the tiny fixture model, two sentences per language (docs/METHOD.md, stage 2):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use landermt_data::{Language, MonoSource};
//! let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
//! let device = burn::tensor::Device::flex().autodiff();
//! let model = landermt_score::frozen(landermt_model::LanguageModel::load(format!("{root}/tests/fixtures/hf-tiny/llama-tiny"), &device)?);
//! let data = MonoSource::Flores { dir: format!("{root}/data/flores200-devtest").into(), first: 1, last: 2 };
//! let languages: Vec<Language> = vec!["en".parse()?, "fr".parse()?];
//! let mut awareness = Vec::new();
//! for &l in &languages {
//!     let ids = landermt_data::read_monolingual(&data, l)?.iter().map(|s| model.encode(s)).collect::<Result<Vec<_>, _>>()?;
//!     awareness.push(landermt_score::awareness(&model, &ids, 2, &|_| {}));
//! }
//! let settings = landermt_score::Settings { model: "llama-tiny".into(), languages, data, epsilon: 0.9, num_layers: 4, selected: vec![2, 3] };
//! let (scores, neurons) = landermt_score::neurons(&settings, &awareness)?;
//! // `scores.write("neurons.safetensors")` and `neurons` as JSON are stage 2's artifacts.
//! assert_eq!(neurons.layers.len(), 2);
//! assert!(!neurons.layers[0].modules["ffn_act"].general.is_empty());
//! # let _ = scores;
//! # Ok(()) }
//! ```

pub mod artifact;
pub mod lape;
pub mod random;
pub mod split;
pub mod taylor;

use std::collections::BTreeMap;

pub use artifact::{ArtifactError, LayerSplit, ModuleScores, ModuleSplit, NEURONS_VERSION, Neurons, Partial, Scores};
pub use split::{Split, split};
pub use taylor::{Awareness, SCORED, awareness, frozen};

use landermt_data::{Language, MonoSource};

/// `score.method`: how stage 2 chooses the units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreMethod {
    /// Taylor awareness and the variance split (METHOD.md eq. 2–3).
    #[default]
    Taylor,
    /// The control: Taylor's counts, random units ([`random`]).
    Random,
    /// LAPE's language-specific FFN units ([`lape`]); Taylor's general units less those.
    Lape,
}

impl ScoreMethod {
    pub fn is_taylor(&self) -> bool {
        *self == ScoreMethod::Taylor
    }
}

/// `neurons` with each selected layer's FFN split taken from `lape`: every language's specific
/// units are LAPE's in that layer, and the general units Taylor's less any LAPE unit. The
/// attention modules keep Taylor's split.
pub fn with_lape(neurons: &Neurons, lape: &lape::Lape) -> Neurons {
    let mut out = Neurons { lape: Some(lape.settings), ..neurons.clone() };
    for layer in &mut out.layers {
        let Some(split) = layer.modules.get_mut(landermt_model::Site::FfnAct.name()) else { continue };
        let units = &lape.units[layer.layer];
        let any: std::collections::BTreeSet<usize> = units.values().flatten().copied().collect();
        split.general.retain(|u| !any.contains(u));
        split.specific = units.clone();
        split.counts = split.specific.iter().map(|(l, u)| (l.clone(), u.len())).collect();
        split.counts.insert("general".into(), split.general.len());
    }
    out
}

/// What the run asked for that stage 2 cannot do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("the variance across languages needs at least two languages, got {0}")]
    TooFewLanguages(usize),
    #[error("language `{0}` is listed twice")]
    DuplicateLanguage(String),
    #[error("ε = {0} is outside [0, 1]")]
    Epsilon(f64),
    #[error("selected layer {layer} does not exist: the model has {num_layers} layers")]
    Layer { layer: usize, num_layers: usize },
    #[error("no sentence of language `{0}` could be scored (each needs at least two tokens)")]
    NoSentences(String),
}

/// Checks the settings before any model work.
pub fn check(languages: &[Language], epsilon: f64) -> Result<(), ScoreError> {
    if languages.len() < 2 {
        return Err(ScoreError::TooFewLanguages(languages.len()));
    }
    if let Some(l) = languages.iter().enumerate().find_map(|(i, l)| languages[..i].contains(l).then_some(l)) {
        return Err(ScoreError::DuplicateLanguage(l.code.into()));
    }
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(ScoreError::Epsilon(epsilon));
    }
    Ok(())
}

/// The stage's inputs besides the per-language [`Awareness`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub languages: Vec<Language>,
    pub data: MonoSource,
    pub epsilon: f64,
    pub num_layers: usize,
    /// Layers from `layers.json` whose split goes into `neurons.json`.
    pub selected: Vec<usize>,
}

/// Builds both artifacts from one [`Awareness`] per language (in `settings.languages` order):
/// the variance and split of every module, and the split of the selected layers.
pub fn neurons(settings: &Settings, awareness: &[Awareness]) -> Result<(Scores, Neurons), ScoreError> {
    check(&settings.languages, settings.epsilon)?;
    assert_eq!(awareness.len(), settings.languages.len(), "one awareness per language");
    if let Some(&layer) = settings.selected.iter().find(|&&l| l >= settings.num_layers) {
        return Err(ScoreError::Layer { layer, num_layers: settings.num_layers });
    }
    if let Some((l, _)) = settings.languages.iter().zip(awareness).find(|(_, a)| a.sentences == 0) {
        return Err(ScoreError::NoSentences(l.code.into()));
    }
    let mut modules = BTreeMap::new();
    let mut splits = BTreeMap::new();
    for &key in awareness[0].s.keys() {
        let s: Vec<Vec<f64>> = awareness.iter().map(|a| a.s[&key].clone()).collect();
        let g: Vec<Vec<f64>> = awareness.iter().map(|a| a.g[&key].clone()).collect();
        let sp = split(&s, settings.epsilon);
        modules.insert(key, ModuleScores { s, g, var: sp.var.clone() });
        splits.insert(key, sp);
    }
    let mut selected = settings.selected.clone();
    selected.sort_unstable();
    selected.dedup();
    let layers = selected
        .iter()
        .map(|&layer| LayerSplit { layer, modules: SCORED.iter().map(|&site| (site.name().to_string(), ModuleSplit::new(&splits[&(layer, site)], &settings.languages))).collect() })
        .collect();
    let counts = settings.languages.iter().zip(awareness).map(|(&language, a)| artifact::LanguageCount { language, sentences: a.sentences, positions: a.positions }).collect();
    let neurons = Neurons {
        version: NEURONS_VERSION,
        model: settings.model.clone(),
        epsilon: settings.epsilon,
        languages: settings.languages.clone(),
        data: settings.data.clone(),
        counts,
        num_layers: settings.num_layers,
        selected,
        layers,
        random_seed: None,
        lape: None,
    };
    Ok((Scores { languages: settings.languages.clone(), modules }, neurons))
}
