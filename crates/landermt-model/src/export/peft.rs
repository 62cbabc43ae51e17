//! A LoRA adapter as Hugging Face PEFT writes one: `adapter_config.json` and
//! `adapter_model.safetensors`, which `PeftModel.from_pretrained(base, folder)` loads onto the
//! base model. PEFT computes `W x + B A x · α/r` with `lora_A.weight` `[r, in]` and
//! `lora_B.weight` `[out, r]`; ours is `x (W + A B · α/r)` with A `[in, r]` and B `[r, out]`,
//! so each is written transposed.

use std::path::Path;

use burn::tensor::Tensor;
use serde_json::json;

use super::{host, write_safetensors};
use crate::error::Result;

/// One trained LoRA pair on the linear map `module` (transformers' path, e.g.
/// `model.layers.0.self_attn.q_proj`).
pub struct LoraPair {
    pub module: String,
    /// `[in, r]`
    pub a: Tensor<2>,
    /// `[r, out]`
    pub b: Tensor<2>,
}

/// The adapter's hyper-parameters, as `adapter_config.json` records them.
pub struct LoraConfig<'a> {
    /// `base_model_name_or_path`: the folder or hub name of the base model.
    pub base: &'a str,
    pub rank: usize,
    pub alpha: f64,
    /// The module names LoRA targets (`q_proj`, `up_proj`, ...).
    pub targets: Vec<String>,
}

/// Writes `pairs` into `out` as a PEFT LoRA adapter folder.
pub fn write_lora_folder(out: &Path, config: &LoraConfig, pairs: &[LoraPair]) -> Result<()> {
    let mut tensors = Vec::new();
    for p in pairs {
        let ([d_in, r], [_, d_out]) = (p.a.dims(), p.b.dims());
        tensors.push((format!("base_model.model.{}.lora_A.weight", p.module), vec![r, d_in], host(p.a.clone().transpose())));
        tensors.push((format!("base_model.model.{}.lora_B.weight", p.module), vec![d_out, r], host(p.b.clone().transpose())));
    }
    write_safetensors(&out.join("adapter_model.safetensors"), tensors)?;
    let adapter_config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": config.base,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "target_modules": config.targets,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    });
    let bytes = serde_json::to_vec_pretty(&adapter_config).expect("plain JSON");
    crate::atomic::write_atomic(&out.join("adapter_config.json"), |w| w.write_all(&bytes))
}
