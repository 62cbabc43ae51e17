//! # landermt-route — stage 3: conditional awareness-based routing (CAR)
//!
//! For a language pair, splits the FFN units of each selected layer into general G,
//! pair-specific S (specific to either language of the pair) and other-specific O, using
//! stage 2's `neurons.json` and `neurons.safetensors`, and fixes what CAR needs: Ḡ (the mean
//! of the two languages' gradient sizes `G_ℓ`) and the static constant (METHOD.md eq. 4 with
//! the sums `S_src + S_tgt`). The result is the versioned artifact `route.json` ([`Route`]);
//! [`apply`] installs it into a loaded model (the routed FFN itself is
//! `landermt_model::nn::Router`).
//!
//! Stage 3 on the tiny fixture model for the pair en–fr (docs/METHOD.md, stage 3):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use landermt_data::{Language, MonoSource};
//! # let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
//! # let load = |device| landermt_model::LanguageModel::load(format!("{root}/tests/fixtures/hf-tiny/llama-tiny"), &device);
//! # let scoring = landermt_score::frozen(load(burn::tensor::Device::flex().autodiff())?);
//! # let data = MonoSource::Flores { dir: format!("{root}/data/flores200-devtest").into(), first: 1, last: 2 };
//! # let languages: Vec<Language> = vec!["en".parse()?, "fr".parse()?, "de".parse()?];
//! # let mut awareness = Vec::new();
//! # for &l in &languages {
//! #     let ids = landermt_data::read_monolingual(&data, l)?.iter().map(|s| scoring.encode(s)).collect::<Result<Vec<_>, _>>()?;
//! #     awareness.push(landermt_score::awareness(&scoring, &ids, 2, &|_| {}));
//! # }
//! # let settings = landermt_score::Settings { model: "llama-tiny".into(), languages: languages.clone(), data, epsilon: 0.9, num_layers: 4, selected: vec![2, 3] };
//! // Stage 2's artifacts (`neurons.json`, `neurons.safetensors`), here computed in place:
//! let (scores, neurons) = landermt_score::neurons(&settings, &awareness)?;
//! let route = landermt_route::build(&neurons, &scores, [languages[0], languages[1]], &[2, 3], landermt_model::nn::CarMode::Taylor)?;
//! let mut model = load(burn::tensor::Device::flex())?;
//! landermt_route::apply(&mut model, &route)?; // `route` as JSON is `route.json`
//! assert!(model.net.layers[2].mlp.router.is_some());
//! # Ok(()) }
//! ```

use landermt_data::{Direction, Language};
use landermt_model::nn::{CarMode, Partition, Router, Start};
use landermt_model::{LanguageModel, Site};
use landermt_score::{Neurons, Scores};
use serde::{Deserialize, Serialize};

/// Version of the `route.json` schema.
pub const ROUTE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("the run's directions span several language pairs ({0}); route one pair per run")]
    SeveralPairs(String),
    #[error("the run has no directions")]
    NoDirections,
    #[error("language `{0}` was not scored in stage 2 (scored: {1})")]
    NotScored(String, String),
    #[error("layer {0} is selected but neurons.json has no split for it")]
    NoSplit(usize),
    #[error("route.json was made for {what} {artifact}, but the model has {model}")]
    Mismatch { what: &'static str, artifact: usize, model: usize },
}

/// Stage 3's result, written as `route.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub version: u32,
    pub model: String,
    /// The two languages whose specific units form S.
    pub pair: [Language; 2],
    pub car: CarMode,
    /// `route.start`: `paper` (absent) or `identity` (step 0 is the pretrained model).
    #[serde(default, skip_serializing_if = "Start::is_paper")]
    pub start: Start,
    pub layers: Vec<RoutedLayer>,
    /// How far the routed model moves from the base model before training, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// The FFN partition of one selected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedLayer {
    pub layer: usize,
    pub units: usize,
    /// Sizes of G, S and O.
    pub counts: [usize; 3],
    pub general: Vec<usize>,
    pub specific: Vec<usize>,
    pub other: Vec<usize>,
    /// Ḡ(i) for every unit: the mean of `G_src[i]` and `G_tgt[i]`.
    pub gbar: Vec<f64>,
    /// The `static` CAR constant: Σ_G S̄ / (Σ_G S̄ + Σ_S S̄) with S̄ = S_src + S_tgt.
    pub static_car: f64,
}

/// Base vs routed model on held-out sentences, before any training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub sentences: usize,
    pub base_loss: f64,
    pub routed_loss: f64,
    /// Largest |logit difference| over all positions and the whole vocabulary.
    pub max_abs_logit_diff: f64,
}

/// Version of the `routes.json` schema.
pub const ROUTES_VERSION: u32 = 1;

/// A joint run's stage 3 (`routes.json`): one [`Route`] per language pair of the run, all over
/// the run's one layer set. A batch or a decoded sentence of src→tgt is routed with the route
/// of the pair {src, tgt}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routes {
    pub version: u32,
    pub routes: Vec<Route>,
}

impl Routes {
    /// The route of the pair `{a, b}`.
    pub fn of_pair(&self, a: Language, b: Language) -> Option<&Route> {
        self.index_of_pair(a, b).map(|i| &self.routes[i])
    }

    /// Where [`Routes::of_pair`]'s route stands in `routes`.
    pub fn index_of_pair(&self, a: Language, b: Language) -> Option<usize> {
        self.routes.iter().position(|r| r.pair.contains(&a) && r.pair.contains(&b))
    }

    /// The route that text in `language` alone is read with (the forgetting measure): the
    /// first pair that holds it.
    pub fn of_language(&self, language: Language) -> Option<&Route> {
        self.routes.iter().find(|r| r.pair.contains(&language))
    }
}

/// Puts `masks` (per routed layer) into `net`'s routers in place of their own constants, the
/// learned CAR's w and b kept: how a joint run routes one pair's batch or sentence.
pub fn swap_masks(net: &mut landermt_model::Transformer, masks: &[(usize, landermt_model::nn::router::RouterMasks)]) {
    for (layer, m) in masks {
        if let Some(r) = net.layers[*layer].mlp.router.as_mut() {
            r.masks = m.clone();
        }
    }
}

/// The constant router parts of `route` for a model of `hidden` units: what a joint run swaps
/// in for a batch of the route's pair.
pub fn router_masks(route: &Route, hidden: usize, device: &burn::tensor::Device) -> Vec<(usize, landermt_model::nn::router::RouterMasks)> {
    route.layers.iter().map(|l| (l.layer, Router::new(route.car, &l.partition(), hidden, device).masks)).collect()
}

/// The one language pair of a run's directions (e.g. en-fr and fr-en → [en, fr]).
pub fn pair_of(directions: &[Direction]) -> Result<[Language; 2], RouteError> {
    let first = directions.first().ok_or(RouteError::NoDirections)?;
    let pair = [first.src, first.tgt];
    if directions.iter().any(|d| !pair.contains(&d.src) || !pair.contains(&d.tgt)) {
        // Name the pairs (en–fr, en–de), not every direction.
        let mut pairs: Vec<String> = Vec::new();
        for d in directions {
            let (a, b) = if d.src.code <= d.tgt.code { (d.src.code, d.tgt.code) } else { (d.tgt.code, d.src.code) };
            let p = format!("{a}–{b}");
            if !pairs.contains(&p) {
                pairs.push(p);
            }
        }
        return Err(RouteError::SeveralPairs(pairs.join(", ")));
    }
    Ok(pair)
}

/// The partition of `layer`'s FFN units for `pair`.
pub fn partition(neurons: &Neurons, scores: &Scores, layer: usize, pair: [Language; 2]) -> Result<Partition, RouteError> {
    let scored = || scores.languages.iter().map(|l| l.code).collect::<Vec<_>>().join(", ");
    let index = |l: Language| scores.languages.iter().position(|&x| x == l).ok_or_else(|| RouteError::NotScored(l.code.into(), scored()));
    let (a, b) = (index(pair[0])?, index(pair[1])?);
    let split = neurons.layers.iter().find(|s| s.layer == layer).ok_or(RouteError::NoSplit(layer))?;
    let ffn = split.modules.get(Site::FfnAct.name()).ok_or(RouteError::NoSplit(layer))?;
    let m = scores.modules.get(&(layer, Site::FfnAct)).ok_or(RouteError::NoSplit(layer))?;

    let mut specific: Vec<usize> = pair.iter().flat_map(|l| ffn.specific.get(l.code).cloned().unwrap_or_default()).collect();
    specific.sort_unstable();
    let mut other: Vec<usize> = ffn.specific.iter().filter(|(code, _)| !pair.iter().any(|l| l.code == *code)).flat_map(|(_, u)| u.iter().copied()).collect();
    other.sort_unstable();
    let gbar: Vec<f64> = m.g[a].iter().zip(&m.g[b]).map(|(x, y)| (x + y) / 2.0).collect();
    let sbar = |i: usize| m.s[a][i] + m.s[b][i];
    let general_sum: f64 = ffn.general.iter().map(|&i| sbar(i)).sum();
    let specific_sum: f64 = specific.iter().map(|&i| sbar(i)).sum();
    let constant = if general_sum + specific_sum > 0.0 { general_sum / (general_sum + specific_sum) } else { 1.0 };
    Ok(Partition { general: ffn.general.clone(), specific, other, gbar, constant })
}

/// Builds `route.json`'s content for `layers` (the pair's selected layers; each must be
/// among those `neurons` splits).
pub fn build(neurons: &Neurons, scores: &Scores, pair: [Language; 2], layers: &[usize], car: CarMode) -> Result<Route, RouteError> {
    let layers = layers
        .iter()
        .map(|&layer| {
            let p = partition(neurons, scores, layer, pair)?;
            Ok(RoutedLayer {
                layer,
                units: p.gbar.len(),
                counts: [p.general.len(), p.specific.len(), p.other.len()],
                general: p.general,
                specific: p.specific,
                other: p.other,
                gbar: p.gbar,
                static_car: p.constant,
            })
        })
        .collect::<Result<Vec<_>, RouteError>>()?;
    Ok(Route { version: ROUTE_VERSION, model: neurons.model.clone(), pair, car, start: Start::Paper, layers, check: None })
}

impl RoutedLayer {
    pub fn partition(&self) -> Partition {
        Partition { general: self.general.clone(), specific: self.specific.clone(), other: self.other.clone(), gbar: self.gbar.clone(), constant: self.static_car }
    }
}

/// Installs the routers of `route` into `model` (replacing any there).
pub fn apply(model: &mut LanguageModel, route: &Route) -> Result<(), RouteError> {
    let cfg = &model.config;
    let device = model.net.device();
    for l in &route.layers {
        if l.layer >= cfg.num_layers {
            return Err(RouteError::Mismatch { what: "layer", artifact: l.layer, model: cfg.num_layers });
        }
        if l.units != cfg.intermediate_size {
            return Err(RouteError::Mismatch { what: "FFN width", artifact: l.units, model: cfg.intermediate_size });
        }
    }
    for l in &route.layers {
        model.net.layers[l.layer].mlp.router = Some(Router::with_start(route.car, route.start, &l.partition(), cfg.hidden_size, &device));
    }
    Ok(())
}

/// How far `routed` moves from `base` on `texts` before any training: the mean LM loss of both
/// (each text's mean next-token loss) and the largest |logit difference| over every position
/// and the whole vocabulary.
pub fn check(base: &LanguageModel, routed: &LanguageModel, texts: &[String]) -> Result<Check, landermt_model::ModelError> {
    use landermt_model::{Batch, Taps, loss::sequence_losses_of_logits};
    let scalar = |t: burn::tensor::Tensor<1>| -> f64 { t.into_data().try_into_vec::<f32>().expect("f32")[0] as f64 };
    let (mut n, mut base_loss, mut routed_loss, mut worst) = (0usize, 0f64, 0f64, 0f64);
    for text in texts {
        let ids = base.encode(text)?;
        let batch = Batch::single(&ids);
        // Full logits once per model: the loss reads all but the last position.
        let lb = base.net.logits(base.net.forward(&batch, None, &mut Taps::none()));
        let lr = routed.net.logits(routed.net.forward(&batch, None, &mut Taps::none()));
        if ids.len() >= 2 {
            let predicted = ids.len() - 1;
            base_loss += scalar(sequence_losses_of_logits(&batch, lb.clone().narrow(1, 0, predicted)));
            routed_loss += scalar(sequence_losses_of_logits(&batch, lr.clone().narrow(1, 0, predicted)));
        }
        worst = worst.max(scalar(lb.sub(lr).abs().max().reshape([1])));
        n += 1;
    }
    Ok(Check { sentences: n, base_loss: base_loss / n.max(1) as f64, routed_loss: routed_loss / n.max(1) as f64, max_abs_logit_diff: worst })
}
