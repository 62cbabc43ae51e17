//! Architectures: each module turns its checkpoint's config into a [`ModelConfig`] and its
//! weight names into the shared [`Transformer`]. This is the one place where checkpoint names
//! map to fields.

pub mod bloom;
pub mod gemma3;
pub mod llama;
pub mod routed;

use std::path::Path;

use burn::nn::Linear;
use burn::tensor::Device;

use crate::WeightDtype;
use crate::config::{Architecture, ModelConfig};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::model::Transformer;
use crate::nn::Norm;
use crate::weights::{HostTensor, Weights};

/// Reads a Hugging Face `config.json` into a [`ModelConfig`].
pub fn config_from_hf(path: &Path) -> Result<ModelConfig> {
    config_from_json(&read_config_json(path)?, path)
}

/// A Hugging Face `config.json`, parsed.
pub fn read_config_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::config(path, format!("not valid JSON: {e}")))
}

/// The [`ModelConfig`] of a parsed `config.json` (read from `path`).
pub fn config_from_json(json: &serde_json::Value, path: &Path) -> Result<ModelConfig> {
    // Multimodal Gemma 3 configs nest the language model's settings in `text_config`.
    let json = match json.get("text_config") {
        Some(t) if json.get("model_type").and_then(|m| m.as_str()) == Some("gemma3") => t,
        _ => json,
    };
    // Our routed export: the base architecture's config with a `landermt` section.
    let model_type = match routed::spec(json) {
        Some(spec) => spec
            .get("base_model_type")
            .and_then(|m| m.as_str())
            .ok_or_else(|| ModelError::config(path, "a landermt export without `landermt.base_model_type` (written before 2026-12-06): export it again"))?,
        None => json.get("model_type").and_then(|m| m.as_str()).unwrap_or(""),
    };
    let hf = HfConfig { json, path };
    let cfg = match model_type {
        "bloom" => bloom::config_from_hf(&hf)?,
        "llama" | "mistral" | "qwen2" => llama::config_from_hf(&hf, model_type)?,
        "gemma3_text" | "gemma3" => gemma3::config_from_hf(&hf)?,
        other => return Err(ModelError::unsupported(path, format!("model_type `{other}` (bloom, llama, mistral, qwen2 and gemma3_text are implemented)"))),
    };
    cfg.validate(path)?;
    Ok(cfg)
}

/// Reads a GGUF file's metadata into a [`ModelConfig`].
pub fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig> {
    let arch = g.require("general.architecture")?.as_str().unwrap_or("");
    let cfg = match arch {
        "bloom" => bloom::config_from_gguf(g)?,
        "llama" => llama::config_from_gguf(g)?,
        "gemma3" => gemma3::config_from_gguf(g)?,
        other => return Err(ModelError::unsupported(g.path(), format!("GGUF architecture `{other}` (bloom, llama and gemma3 are implemented)"))),
    };
    cfg.validate(g.path())?;
    Ok(cfg)
}

/// Builds the network of `cfg` from `weights`; `routing` is the `landermt` section of a routed
/// export's `config.json` ([`routed::spec`]), whose routers and adapters are added.
pub fn load(weights: &Weights, cfg: &ModelConfig, routing: Option<&serde_json::Value>, dtype: WeightDtype, device: &Device) -> Result<Transformer> {
    let l = Loader { weights, cfg, dtype, device };
    let mut net = match cfg.architecture {
        Architecture::Bloom => bloom::load(&l),
        Architecture::Llama => llama::load(&l),
        Architecture::Gemma3 => gemma3::load(&l),
    }?;
    if let Some(spec) = routing {
        routed::install(&l, spec, &mut net)?;
    }
    Ok(net)
}

/// Typed access to a Hugging Face config.json, with errors that name the file and key.
pub(crate) struct HfConfig<'a> {
    pub json: &'a serde_json::Value,
    pub path: &'a Path,
}

impl HfConfig<'_> {
    fn value(&self, keys: &[&str]) -> Option<&serde_json::Value> {
        keys.iter().find_map(|k| self.json.get(*k).filter(|v| !v.is_null()))
    }
    /// The first of `keys` present (configs rename fields across versions).
    pub fn usize(&self, keys: &[&str]) -> Result<usize> {
        self.opt_usize(keys)?.ok_or_else(|| ModelError::config(self.path, format!("`{}` is missing", keys[0])))
    }
    pub fn opt_usize(&self, keys: &[&str]) -> Result<Option<usize>> {
        match self.value(keys) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => bounded(self.path, keys[0], n).map(Some),
                None => Err(ModelError::config(self.path, format!("`{}` should be a non-negative integer, found {v}", keys[0]))),
            },
        }
    }
    pub fn f64(&self, keys: &[&str], default: Option<f64>) -> Result<f64> {
        match self.value(keys) {
            None => default.ok_or_else(|| ModelError::config(self.path, format!("`{}` is missing", keys[0]))),
            Some(v) => v.as_f64().ok_or_else(|| ModelError::config(self.path, format!("`{}` should be a number, found {v}", keys[0]))),
        }
    }
    pub fn bool(&self, key: &str, default: bool) -> bool {
        self.json.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
    }
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.value(&[key])
    }
    /// Token ids; `eos_token_id` may be a single id or a list.
    pub fn ids(&self, key: &str) -> Vec<u32> {
        match self.json.get(key) {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect(),
            _ => Vec::new(),
        }
    }
    /// `rope_theta` at top level (transformers 4) or under `rope_parameters` (transformers 5),
    /// refusing scaled variants we do not implement.
    pub fn rope_theta(&self, params: Option<&serde_json::Value>, default: f64) -> Result<f64> {
        let params = params.or_else(|| self.get("rope_parameters"));
        let scaling = self.get("rope_scaling").or(params);
        if let Some(kind) = scaling.and_then(|s| s.get("rope_type").or_else(|| s.get("type"))).and_then(|t| t.as_str())
            && kind != "default"
        {
            return Err(ModelError::unsupported(self.path, format!("rope scaling `{kind}`")));
        }
        if let Some(t) = params.and_then(|p| p.get("rope_theta")).and_then(|t| t.as_f64()) {
            return Ok(t);
        }
        self.f64(&["rope_theta"], Some(default))
    }
}

/// The largest size a config may declare: far beyond any model, small enough that nothing
/// sized by it is allocated for a header that lies (found by fuzzing: 2³² layers).
fn most(key: &str) -> u64 {
    if key.contains("layer") || key.ends_with("block_count") { 1 << 12 } else { 1 << 24 }
}

fn bounded(origin: &Path, key: &str, v: u64) -> Result<usize> {
    if v > most(key) {
        return Err(ModelError::config(origin, format!("`{key}` = {v} is beyond any model this toolkit loads (at most {})", most(key))));
    }
    Ok(v as usize)
}

pub(crate) fn gguf_usize(g: &GgufFile, key: &str) -> Result<usize> {
    bounded(g.path(), key, g.require_u64(key)?)
}

pub(crate) fn gguf_opt_f64(g: &GgufFile, key: &str) -> Option<f64> {
    g.get(key).and_then(|v| v.as_f64())
}

pub(crate) fn gguf_token_ids(g: &GgufFile) -> (Option<u32>, Vec<u32>, Option<u32>) {
    let id = |k: &str| g.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
    (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id").into_iter().collect(), id("tokenizer.ggml.padding_token_id"))
}

/// Vocabulary size of a GGUF file: the metadata key if present, else the token list.
pub(crate) fn gguf_vocab(g: &GgufFile, arch: &str) -> Result<usize> {
    if let Some(v) = g.get(&format!("{arch}.vocab_size")).and_then(|v| v.as_u64()) {
        return Ok(v as usize);
    }
    if let Some(t) = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        return Ok(t.len());
    }
    Ok(g.info("token_embd.weight")?.shape()[0])
}

/// Shape-checked weight access for the architecture loaders.
pub(crate) struct Loader<'a> {
    pub weights: &'a Weights,
    pub cfg: &'a ModelConfig,
    /// What the linear maps and embeddings are stored in.
    pub dtype: WeightDtype,
    pub device: &'a Device,
}

impl Loader<'_> {
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        self.weights.get_shaped(name, shape)
    }

    pub fn opt(&self, name: &str, shape: &[usize]) -> Result<Option<HostTensor>> {
        if self.weights.contains(name) { self.get(name, shape).map(Some) } else { Ok(None) }
    }

    pub fn is_gguf(&self) -> bool {
        self.weights.gguf().is_some()
    }

    /// `{prefix}.weight` `[d_out, d_in]` and, if `bias`, `{prefix}.bias`.
    pub fn linear(&self, prefix: &str, d_out: usize, d_in: usize, bias: bool) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let b = if bias { Some(self.get(&format!("{prefix}.bias"), &[d_out])?) } else { None };
        Ok(self.linear_of(w, b))
    }

    /// A linear layer from a Hugging Face `[out, in]` weight, stored in the loader's dtype.
    pub fn linear_of(&self, weight: HostTensor, bias: Option<HostTensor>) -> Linear {
        crate::nn::linear(weight, bias, self.dtype, self.device)
    }

    /// A weight matrix (embedding, head) stored in the loader's dtype.
    pub fn matrix(&self, t: HostTensor) -> burn::module::Param<burn::tensor::Tensor<2>> {
        burn::module::Param::from_tensor(crate::nn::tensor2(t, self.dtype, self.device))
    }

    /// A norm of width `dim` with the model's norm kind (`bias` for LayerNorm).
    pub fn norm(&self, prefix: &str, dim: usize) -> Result<Norm> {
        let with_bias = self.cfg.norm == crate::config::NormKind::LayerNorm;
        let w = self.get(&format!("{prefix}.weight"), &[dim])?;
        let b = if with_bias { Some(self.get(&format!("{prefix}.bias"), &[dim])?) } else { None };
        Ok(crate::model::norm(w, b, self.cfg.norm, self.cfg.norm_eps, self.device))
    }
}
