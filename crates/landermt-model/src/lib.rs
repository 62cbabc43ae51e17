//! # landermt-model
//!
//! Decoder-only language models in [Burn](https://burn.dev) — BLOOM, the LLaMA family and
//! Gemma 3 — loaded from Hugging Face folders (`config.json`, safetensors, `tokenizer.json`) or
//! from GGUF files (dequantised to f32, tokenizer rebuilt from metadata), computing what
//! Hugging Face transformers computes (checked by parity tests against its outputs).
//!
//! The stages of LANDeRMT build on four things here:
//! - [`LanguageModel::load`]: config, tokenizer and network from a path;
//! - [`Transformer::forward`]: final hidden states of a left-padded [`Batch`], optionally
//!   continuing a [`KvCache`];
//! - [`Taps`]: record any block's output, attention projections or FFN intermediate units, and
//!   attach zero "probe" leaves there to read ∂L/∂h after `backward()`;
//! - [`generate::greedy`]: batched greedy decoding with the KV cache.

pub mod amx;
pub mod arch;
pub mod atomic;
pub mod backend;
pub mod blas;
pub mod cache;
pub mod config;
pub mod cuda_runtime;
pub mod dtype;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf;
mod gguf_tokenizer;
pub mod heap;
pub mod launches;
pub mod loss;
pub mod model;
pub mod nn;
pub mod screen;
#[cfg(target_arch = "x86_64")]
pub mod skinny;
pub mod taps;
pub mod tokenizer;
pub mod vmath;
pub mod weights;
#[cfg(feature = "wgpu")]
pub mod wgpu_adapter;
mod xent;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

pub use backend::Backend;
pub use config::{Architecture, ModelConfig};
pub use dtype::WeightDtype;
pub use error::{ModelError, Result};
pub use model::{Batch, KvCache, Transformer};
pub use taps::{Site, Taps};
pub use tokenizer::Tokenizer;
pub use weights::Weights;

/// A loaded model: its description, tokenizer and network. Cloning shares the weights.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub net: Transformer,
    /// The folder or file it was loaded from.
    pub source: PathBuf,
}

impl LanguageModel {
    /// Loads a Hugging Face folder or a `.gguf` file onto `device`, weights in f32.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::load_as(path, device, WeightDtype::F32)
    }

    /// As [`LanguageModel::load`], with the linear maps and embeddings stored in `dtype`
    /// (see [`WeightDtype`]). bf16 runs on flex only.
    pub fn load_as(path: impl AsRef<Path>, device: &Device, dtype: WeightDtype) -> Result<Self> {
        let path = path.as_ref();
        let _span = tracing::info_span!("load", path = %path.display()).entered();
        let start = std::time::Instant::now();
        if !path.exists() {
            return Err(ModelError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such model file or folder")));
        }
        let weights = Weights::open(path)?;
        let (config, tokenizer, routing) = read_config(path, &weights)?;
        // A tokenizer larger than the embedding would index past it.
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(ModelError::Tokenizer { path: path.into(), msg: format!("{} tokens but the model embeds only {}", tokenizer.vocab_size(), config.vocab_size) });
        }
        if dtype != WeightDtype::F32 && *device != Device::flex() && *device != Device::flex().autodiff() {
            return Err(ModelError::unsupported(path, format!("{dtype} weights on {device:?}: the mixed-precision products exist on flex only")));
        }
        let net = arch::load(&weights, &config, routing.as_ref(), dtype, device)?;
        tracing::info!(
            architecture = ?config.architecture,
            layers = config.num_layers,
            hidden = config.hidden_size,
            dtype = %dtype,
            seconds = start.elapsed().as_secs_f32(),
            "model loaded"
        );
        Ok(Self { config, tokenizer, net, source: path.into() })
    }

    /// The model for decoding only: its blocks' weights column-major on flex
    /// ([`nn::decode_layout`]), which a decoding step multiplies without repacking them.
    /// Training a model in this layout works but gains nothing. A tied f32 head gets its
    /// bf16 screen ([`screen`]), which greedy decoding reads instead of the f32 head: its
    /// weights must not change after this.
    pub fn into_decoding(mut self) -> Self {
        self.net = nn::decode_layout::column_major(self.net);
        self.net.screen = screen::ScreenedHead::of(&self.net);
        self
    }

    /// The model with its linear maps and embedding stored in `dtype` ([`dtype::stored_in`]),
    /// e.g. a trained system decoded in bf16. bf16 runs on flex only.
    pub fn stored_in(mut self, dtype: WeightDtype) -> Self {
        self.net = dtype::stored_in(self.net, dtype);
        self.net.screen = None;
        self
    }

    /// Encodes `text` with the model's usual special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }
}

/// The configuration, tokenizer and routing spec of the model at `path`, whose weights are open.
fn read_config(path: &Path, weights: &Weights) -> Result<(ModelConfig, Tokenizer, Option<serde_json::Value>)> {
    Ok(match weights.gguf() {
        Some(g) => (arch::config_from_gguf(g)?, Tokenizer::from_gguf(g)?, None),
        None => {
            let config_path = path.join("config.json");
            let json = arch::read_config_json(&config_path)?;
            let routing = arch::routed::spec(&json).cloned();
            (arch::config_from_json(&json, &config_path)?, Tokenizer::from_file(&path.join("tokenizer.json"))?, routing)
        }
    })
}

/// The configuration of the model at `path` (a Hugging Face folder or a `.gguf` file), read
/// without loading its weights: e.g. the sizes of its products before a device is chosen.
pub fn config_at(path: impl AsRef<Path>) -> Result<ModelConfig> {
    let path = path.as_ref();
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        return arch::config_from_gguf(&gguf::GgufFile::open(path)?);
    }
    let config_path = path.join("config.json");
    arch::config_from_json(&arch::read_config_json(&config_path)?, &config_path)
}
