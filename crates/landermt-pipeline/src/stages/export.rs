//! `cargo xtask export`: a trained system as files other tools load. `hf` is a Hugging Face
//! folder with the delta merged (constant CAR folded into the weights; token-dependent CAR and
//! bottleneck adapters as remote code beside it); `peft` is LoRA's adapter folder for PEFT;
//! `gguf` is one llama.cpp file, for what folds into plain weights.

use std::path::Path;

use landermt_train::Method;

use super::train::{delta_path, trained};
use super::*;

/// What `export` writes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A transformers folder: config.json, model.safetensors, tokenizer.json (and
    /// modeling_landermt.py where routing or adapters need it).
    Hf,
    /// A PEFT LoRA adapter folder: adapter_config.json, adapter_model.safetensors.
    Peft,
    /// One GGUF file in llama.cpp's conventions, its matrices in the given type.
    Gguf(landermt_model::export::gguf::GgufType),
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hf" => Ok(Format::Hf),
            "peft" => Ok(Format::Peft),
            "gguf" => Ok(Format::Gguf(landermt_model::export::gguf::GgufType::F32)),
            other => match other.strip_prefix("gguf-") {
                Some(ty) => Ok(Format::Gguf(ty.parse().map_err(anyhow::Error::msg)?)),
                None => bail!("unknown export format `{other}` (hf | peft | gguf | gguf-f16 | gguf-bf16 | gguf-q8_0)"),
            },
        }
    }
}

/// Exports `system` into `out`. In a joint run a LANDeRMT variant routes each pair with its own
/// units, so `direction` names the pair whose model is written.
pub fn export(cfg: &RunConfig, system: System, direction: Option<Direction>, format: Format, out: &Path) -> Result<()> {
    let method = system.method;
    match format {
        Format::Hf => export_hf(cfg, system, direction, out),
        Format::Gguf(ty) => export_gguf(cfg, system, direction, ty, out),
        Format::Peft if method == Method::Lora => export_peft(cfg, system, out),
        Format::Peft if method == Method::AdapterLora => {
            bail!("`adapter-lora`: PEFT has no bottleneck adapter; `--format hf` writes it whole (LoRA merged, the adapters as remote code for `trust_remote_code=True`)")
        }
        Format::Peft => bail!("`--format peft` writes LoRA adapters; `{}` exports with `--format hf`", method.name()),
    }
    .with_context(|| format!("exporting `{system}` to {}", out.display()))
}

/// The trained system's model and network (the base model for `none`), and its delta.
fn network(cfg: &RunConfig, system: System, direction: Option<Direction>) -> Result<(LanguageModel, landermt_model::Transformer, Option<std::path::PathBuf>)> {
    if system.method == Method::None {
        let model = cfg.model.load(false)?;
        let net = model.net.clone();
        return Ok((model, net, None));
    }
    let delta = delta_path(cfg, system)?;
    let (model, trainee) = trained(cfg, system, &delta)?;
    let net = match (&trainee.joint, direction) {
        (Some(_), Some(d)) => trainee.network_for(d),
        (Some(_), None) => bail!("{}: a joint run's `{}` routes each pair with its own units; name the pair to export with --pair", cfg.source.display(), system.method.name()),
        (None, _) => trainee.network(),
    };
    Ok((model, burn::module::Module::valid(&net), Some(delta)))
}

fn export_gguf(cfg: &RunConfig, system: System, direction: Option<Direction>, ty: landermt_model::export::gguf::GgufType, out: &Path) -> Result<()> {
    let (model, net, _) = network(cfg, system, direction)?;
    landermt_model::export::gguf::write_gguf(&model, &net, out, ty)?;
    println!("export: `{system}` → {} (GGUF, {ty:?} matrices)", out.display());
    Ok(())
}

fn export_hf(cfg: &RunConfig, system: System, direction: Option<Direction>, out: &Path) -> Result<()> {
    let (model, net, delta) = network(cfg, system, direction)?;
    landermt_model::export::write_hf_folder(&model, &net, out)?;
    let note = if out.join(landermt_model::export::REMOTE_CODE).exists() { " (routing or adapters as remote code: load with trust_remote_code=True)" } else { "" };
    let delta = delta.map_or(String::new(), |d| format!(" + {}", d.display()));
    println!("export: {}{delta} → {}{note}", cfg.model.describe(), out.display());
    Ok(())
}

fn export_peft(cfg: &RunConfig, system: System, out: &Path) -> Result<()> {
    use landermt_model::export::block_prefix;
    use landermt_model::export::peft::{LoraConfig, LoraPair, fused_qkv, write_lora_folder};
    use landermt_train::delta::Target;
    let delta = delta_path(cfg, system)?;
    let (model, trainee) = trained(cfg, system, &delta)?;
    let lora = trainee.lora.as_ref().context("the trained `lora` has no LoRA pairs")?;
    let t = cfg.train_for(system.method);
    let c = &model.config;
    let bloom = c.architecture == landermt_model::Architecture::Bloom;
    let (mut pairs, mut targets, mut qkv) = (Vec::new(), Vec::new(), std::collections::BTreeMap::new());
    for (k, &(layer, target)) in lora.targets.iter().enumerate() {
        let (a, b) = (lora.a[k].val(), lora.b[k].val());
        if bloom && matches!(target, Target::Q | Target::K | Target::V) {
            // Fused below: BLOOM's PEFT LoRA sits on the one query_key_value map.
            let slot = [Target::Q, Target::K, Target::V].iter().position(|&x| x == target).expect("q, k or v");
            qkv.entry(layer).or_insert_with(|| [None, None, None])[slot] = Some((a, b));
            continue;
        }
        let (name, path) = if bloom { target.bloom_module().context("BLOOM has no gate projection")? } else { target.hf_module() };
        pairs.push(LoraPair { module: format!("{}.{path}", block_prefix(c.architecture, layer)), a, b });
        targets.push(name.to_string());
    }
    let device = model.net.device();
    for (layer, parts) in qkv {
        pairs.push(fused_qkv(format!("{}.self_attention.query_key_value", block_prefix(c.architecture, layer)), parts, c.hidden_size, c.num_heads, t.lora_rank, &device));
        targets.push("query_key_value".to_string());
    }
    targets.sort();
    targets.dedup();
    let patterns = if targets.iter().any(|m| m == "query_key_value") { vec![("query_key_value".to_string(), 3 * t.lora_rank, 3.0 * t.lora_alpha)] } else { Vec::new() };
    let base = model.source.display().to_string();
    write_lora_folder(out, &LoraConfig { base: &base, rank: t.lora_rank, alpha: t.lora_alpha, targets, patterns }, &pairs)?;
    println!("export: LoRA of {} ({} pairs, r {}, α {}) → {} (PeftModel.from_pretrained(base, folder))", base, pairs.len(), t.lora_rank, t.lora_alpha, out.display());
    Ok(())
}
