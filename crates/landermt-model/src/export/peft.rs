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
    /// Modules with another rank and α (PEFT's `rank_pattern`, `alpha_pattern`).
    pub patterns: Vec<(String, usize, f64)>,
}

/// BLOOM's q, k and v pairs (`[in, r]`, `[r, out]` each; `None` where LoRA does not target
/// one) as one exact pair on its fused `query_key_value`: the A side by side (rank 3r), the B
/// block-diagonal with their columns in the fused map's per-head order
/// (`[head][q | k | v][head_dim]`). With α scaled by 3 too, α/r is unchanged.
pub fn fused_qkv(module: String, parts: [Option<(Tensor<2>, Tensor<2>)>; 3], hidden: usize, heads: usize, rank: usize, device: &burn::tensor::Device) -> LoraPair {
    let head_dim = hidden / heads;
    let (mut a, mut b) = (vec![0f32; hidden * 3 * rank], vec![0f32; 3 * rank * 3 * hidden]);
    for (s, part) in parts.into_iter().enumerate() {
        let Some((pa, pb)) = part else { continue };
        let (pa, pb) = (host(pa), host(pb));
        for i in 0..hidden {
            a[i * 3 * rank + s * rank..i * 3 * rank + (s + 1) * rank].copy_from_slice(&pa[i * rank..(i + 1) * rank]);
        }
        for t in 0..rank {
            for o in 0..hidden {
                let fused = (o / head_dim * 3 + s) * head_dim + o % head_dim;
                b[(s * rank + t) * 3 * hidden + fused] = pb[t * hidden + o];
            }
        }
    }
    let tensor = |v: Vec<f32>, shape: [usize; 2]| Tensor::from_data(burn::tensor::TensorData::new(v, shape), device);
    LoraPair { module, a: tensor(a, [hidden, 3 * rank]), b: tensor(b, [3 * rank, 3 * hidden]) }
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
        "rank_pattern": config.patterns.iter().map(|(m, r, _)| (m.clone(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "alpha_pattern": config.patterns.iter().map(|(m, _, a)| (m.clone(), json!(a))).collect::<serde_json::Map<_, _>>(),
        "revision": null,
    });
    let bytes = serde_json::to_vec_pretty(&adapter_config).expect("plain JSON");
    crate::atomic::write_atomic(&out.join("adapter_config.json"), |w| w.write_all(&bytes))
}
