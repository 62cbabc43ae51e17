//! # landermt-train — stage 4: selective fine-tuning and the baselines
//!
//! Updates only the rows and columns of the language-aware neurons (or, for the baselines,
//! whole tensors), keeping every other entry bit-identical (METHOD.md stage 4):
//! - [`method`]: what each method trains;
//! - [`delta`]: partially trained weights as small gathered parameters stitched into the frozen
//!   model at each forward pass, so the optimizer holds state only for trainable entries;
//! - [`data`]: prompt templates and tokenized examples with the target span;
//! - [`loss`]: cross-entropy on target tokens only, logits only where needed;
//! - [`Trainee`]: the model and its trainable part, and one optimisation step;
//! - [`trainer`]: the loop (seeded plan, accumulation, schedule, validation) with atomic,
//!   resumable checkpoints;
//! - [`added`]: LoRA pairs and adapters;
//! - [`joint`]: a joint run's per-direction routing and update sets over one delta;
//! - [`lazy`], [`optim`]: the lazy AdamW of joint runs (per-unit steps) and the choice of
//!   optimizer;
//! - [`ids`]: stable parameter ids, so a resumed run meets its optimizer state.
//!
//! One selective step of `landermt` on the tiny fixture model (docs/METHOD.md, stage 4):
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
//! # let route = landermt_route::build(&neurons, &scores, [languages[0], languages[1]], &[2, 3], landermt_model::nn::CarMode::Taylor)?;
//! let mut model = load(burn::tensor::Device::flex().autodiff())?;
//! landermt_route::apply(&mut model, &route)?;
//! let method = landermt_train::Method::Landermt;
//! let trainee = landermt_train::Trainee::new(model.net.clone(), method, method.units(&route, &neurons).as_ref(), &[2, 3]);
//! let direction: landermt_data::Direction = "en-fr".parse()?;
//! let pair = landermt_data::Pair { src: "The cat sleeps.".into(), tgt: "Le chat dort.".into() };
//! let example = landermt_train::example(&model, direction, &pair, &landermt_data::prompt::Template::default(), 64)?.expect("fits");
//! let mut optim = landermt_train::adamw(0.01);
//! let (trainee, loss) = landermt_train::step(trainee, &mut optim, 1e-3, &[&example], 0);
//! assert!(loss.is_finite() && trainee.delta.num_entries() > 0);
//! # Ok(()) }
//! ```

pub mod added;
pub mod data;
pub mod delta;
pub mod ids;
pub mod joint;
pub mod lazy;
pub mod loss;
pub mod method;
pub mod optim;
pub mod trainer;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use landermt_model::{Batch, Taps, Transformer};

pub use data::{Example, Mixing, Template, example};
pub use delta::Delta;
pub use method::{Method, UnitSet};
pub use trainer::{Schedule, Settings};

/// The model being trained: the network (whole tensors trainable where the method says so,
/// frozen elsewhere) and the gathered trainable slices.
#[derive(Module, Debug)]
pub struct Trainee {
    pub net: Transformer,
    pub delta: Delta,
    /// The LoRA pairs of `lora` and `adapter-lora`.
    pub lora: Option<added::Lora>,
    /// In a joint run of a LANDeRMT variant: each direction's routing and update set.
    #[module(skip)]
    pub joint: Option<std::sync::Arc<joint::Joint>>,
}

impl Trainee {
    /// Prepares `net` (on an autodiff device) for `method`; `units` is the unit set of the
    /// LANDeRMT variants, `selected` the layers of `layers`.
    pub fn new(net: Transformer, method: Method, units: Option<&UnitSet>, selected: &[usize]) -> Self {
        Self::with_added(net, method, units, selected, &added::AddedSettings::default(), 1)
    }

    /// As [`new`](Self::new), with the sizes of LoRA and adapters and the seed of their
    /// initialisation.
    pub fn with_added(net: Transformer, method: Method, units: Option<&UnitSet>, selected: &[usize], sizes: &added::AddedSettings, seed: u64) -> Self {
        let mut net = net.no_grad();
        if matches!(method, Method::Adapter | Method::AdapterLora) {
            net = added::add_adapters(net, sizes.adapter_size, seed);
        }
        let lora = matches!(method, Method::Lora | Method::AdapterLora).then(|| added::Lora::new(&net, sizes, seed));
        match method {
            Method::Full => net = net.set_require_grad(true),
            Method::Layers => {
                for &l in selected {
                    net.layers[l] = net.layers[l].clone().set_require_grad(true);
                }
            }
            Method::Landermt | Method::LandermtLs | Method::LandermtLg => {
                // The learned CAR's w and b, and the identity start's λ, train with the selected
                // units (METHOD.md stages 3–4).
                for block in &mut net.layers {
                    if let Some(r) = block.mlp.router.take() {
                        block.mlp.router = Some(if r.w.is_some() || r.lambda.is_some() { r.set_require_grad(true) } else { r });
                    }
                }
            }
            _ => {}
        }
        let empty = UnitSet::new();
        let delta = Delta::new(&net, units.unwrap_or(&empty));
        Self { net, delta, lora, joint: None }
    }

    /// The network with the trained slices and LoRA pairs in place.
    pub fn network(&self) -> Transformer {
        let net = self.delta.stitched(&self.net);
        match &self.lora {
            Some(l) => l.apply(net),
            None => net,
        }
    }

    /// The network as direction `direction` is computed: routed with its pair's partition in a
    /// joint run, [`network`](Self::network) otherwise.
    pub fn network_for(&self, direction: landermt_data::Direction) -> Transformer {
        let mut net = self.network();
        if let Some(j) = &self.joint {
            j.route(&mut net, j.index(direction));
        }
        net
    }

    /// Loss of a batch of examples (all of one direction), on the target tokens: a scalar to
    /// call `backward()` on (its gradients are the loss's, its value is not), and the value.
    pub fn loss(&self, examples: &[&Example], pad_id: u32) -> (burn::tensor::Tensor<1>, f64) {
        let seqs: Vec<Vec<u32>> = examples.iter().map(|e| e.ids.clone()).collect();
        let batch = Batch::left_padded(&seqs, pad_id);
        let net = self.network_for(examples[0].direction);
        let hidden = net.forward(&batch, None, &mut Taps::none());
        loss::target_loss_for_backward(&net, &batch, examples, hidden)
    }
}

/// AdamW as the project uses it (decoupled weight decay; ε as in PyTorch's default).
pub fn adamw(weight_decay: f64) -> burn::optim::ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(weight_decay as f32).with_epsilon(1e-8).init()
}

/// One optimisation step on one batch; returns the trainee and the batch's loss.
pub fn step(trainee: Trainee, optim: &mut burn::optim::ModuleOptimizer, lr: f64, examples: &[&Example], pad_id: u32) -> (Trainee, f64) {
    let (loss, value) = trainee.loss(examples, pad_id);
    let grads = GradientsParams::from_grads(loss.backward(), &trainee);
    (optim.step(lr, trainee, grads), value)
}
