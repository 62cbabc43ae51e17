//! Writing a network as a Hugging Face folder: `model.safetensors` under transformers' tensor
//! names (Linear weights transposed back to `[out, in]`), `config.json` (copied from a Hugging
//! Face source, or written from the config for a GGUF source) and `tokenizer.json`. LLaMA-style
//! models, Gemma 3 and BLOOM (its q, k and v fused back into one head-interleaved map).
//! What a plain checkpoint cannot hold (token-dependent CAR, bottleneck adapters) goes into
//! transformers remote code beside it ([`modeling`]).

pub mod gguf;
mod modeling;
pub mod peft;

/// The remote code's file in a routed export.
pub use modeling::FILE as REMOTE_CODE;

use std::collections::HashMap;
use std::path::Path;

use burn::nn::Linear;
use burn::tensor::Tensor;
use safetensors::{Dtype, tensor::TensorView};

use crate::config::{Architecture, LayerAttention, Positions};
use crate::error::{ModelError, Result};
use crate::nn::Norm;
use crate::{LanguageModel, Transformer};

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // bf16 weights are written widened: the export is an f32 checkpoint.
    t.inner().cast(burn::tensor::FloatDType::F32).into_data().try_into_vec().expect("f32 weights")
}

/// (name, shape, values) of f32 tensors, in transformers' names and layout.
pub(crate) type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A Linear map under transformers' name: the weight transposed back to `[out, in]`.
fn linear(out: &mut Tensors, name: &str, l: &Linear) {
    let [d_in, d_out] = l.weight.dims();
    out.push((format!("{name}.weight"), vec![d_out, d_in], host(l.weight.val().transpose())));
    if let Some(b) = &l.bias {
        out.push((format!("{name}.bias"), vec![d_out], host(b.val())));
    }
}

fn norm(out: &mut Tensors, name: &str, n: &Norm) {
    out.push((format!("{name}.weight"), vec![n.weight.dims()[0]], host(n.weight.val())));
    if let Some(b) = &n.bias {
        out.push((format!("{name}.bias"), vec![b.dims()[0]], host(b.val())));
    }
}

/// The FFN's input maps (gate, up) with a constant CAR folded in: `FFN_U(c·x)` has U's gate
/// and up columns scaled by c (not their biases).
fn car_folded(block: &crate::nn::Block) -> impl Fn(&Linear) -> Linear + '_ {
    let scale = block.mlp.router.as_ref().and_then(|r| r.constant_shares().map(|(g, s)| r.unit_scales(g, s)));
    move |l: &Linear| match &scale {
        Some(scale) => Linear { weight: burn::module::Param::initialized(burn::module::ParamId::new(), l.weight.val().mul(scale.clone())), ..l.clone() },
        None => l.clone(),
    }
}

/// transformers' prefix of block `i`'s tensors.
pub fn block_prefix(architecture: Architecture, i: usize) -> String {
    match architecture {
        Architecture::Bloom => format!("transformer.h.{i}"),
        _ => format!("model.layers.{i}"),
    }
}

/// transformers' tensors of `net`: (name, shape, values). A constant CAR is folded into the
/// weights; token-dependent routers and adapters are left to [`modeling`].
pub fn hf_tensors(net: &Transformer) -> Result<Tensors> {
    match net.config.architecture {
        Architecture::Bloom => Ok(bloom_tensors(net)),
        Architecture::Llama | Architecture::Gemma3 => Ok(llama_tensors(net)),
    }
}

/// LLaMA-family and Gemma 3 names.
fn llama_tensors(net: &Transformer) -> Tensors {
    let c = &net.config;
    let mut out = Tensors::new();
    let gemma = c.architecture == Architecture::Gemma3;
    out.push(("model.embed_tokens.weight".into(), vec![c.vocab_size, c.hidden_size], host(net.embed_tokens.val())));
    for (i, b) in net.layers.iter().enumerate() {
        let p = block_prefix(c.architecture, i);
        norm(&mut out, &format!("{p}.input_layernorm"), &b.attn_norm);
        linear(&mut out, &format!("{p}.self_attn.q_proj"), &b.attn.q_proj);
        linear(&mut out, &format!("{p}.self_attn.k_proj"), &b.attn.k_proj);
        linear(&mut out, &format!("{p}.self_attn.v_proj"), &b.attn.v_proj);
        linear(&mut out, &format!("{p}.self_attn.o_proj"), &b.attn.o_proj);
        if let (Some(qn), Some(kn)) = (&b.attn.q_norm, &b.attn.k_norm) {
            norm(&mut out, &format!("{p}.self_attn.q_norm"), qn);
            norm(&mut out, &format!("{p}.self_attn.k_norm"), kn);
        }
        if gemma {
            norm(&mut out, &format!("{p}.post_attention_layernorm"), b.post_attn_norm.as_ref().expect("Gemma 3 has post-norms"));
            norm(&mut out, &format!("{p}.pre_feedforward_layernorm"), &b.ffn_norm);
            norm(&mut out, &format!("{p}.post_feedforward_layernorm"), b.post_ffn_norm.as_ref().expect("Gemma 3 has post-norms"));
        } else {
            norm(&mut out, &format!("{p}.post_attention_layernorm"), &b.ffn_norm);
        }
        let folded = car_folded(b);
        linear(&mut out, &format!("{p}.mlp.gate_proj"), &folded(b.mlp.gate_proj.as_ref().expect("gated FFN")));
        linear(&mut out, &format!("{p}.mlp.up_proj"), &folded(&b.mlp.up_proj));
        linear(&mut out, &format!("{p}.mlp.down_proj"), &b.mlp.down_proj);
    }
    norm(&mut out, "model.norm", &net.final_norm);
    if let Some(w) = &net.lm_head {
        out.push(("lm_head.weight".into(), vec![c.vocab_size, c.hidden_size], host(w.val().transpose())));
    }
    out
}

/// BLOOM's names, with q, k and v fused back into `query_key_value`, interleaved per head
/// (`[head][q | k | v][head_dim]` rows), as transformers stores it.
fn bloom_tensors(net: &Transformer) -> Tensors {
    let c = &net.config;
    let mut out = Tensors::new();
    out.push(("transformer.word_embeddings.weight".into(), vec![c.vocab_size, c.hidden_size], host(net.embed_tokens.val())));
    norm(&mut out, "transformer.word_embeddings_layernorm", net.embed_norm.as_ref().expect("BLOOM has an embedding norm"));
    for (i, b) in net.layers.iter().enumerate() {
        let p = block_prefix(c.architecture, i);
        norm(&mut out, &format!("{p}.input_layernorm"), &b.attn_norm);
        let mut qkv = Tensors::new();
        for l in [&b.attn.q_proj, &b.attn.k_proj, &b.attn.v_proj] {
            linear(&mut qkv, "", l);
        }
        let (rows, cols) = (c.head_dim, c.hidden_size);
        let fuse = |parts: [&Vec<f32>; 3], width: usize| -> Vec<f32> {
            (0..c.num_heads).flat_map(|h| parts.into_iter().flat_map(move |t| t[h * rows * width..(h + 1) * rows * width].iter().copied())).collect()
        };
        out.push((format!("{p}.self_attention.query_key_value.weight"), vec![3 * cols, cols], fuse([&qkv[0].2, &qkv[2].2, &qkv[4].2], cols)));
        out.push((format!("{p}.self_attention.query_key_value.bias"), vec![3 * cols], fuse([&qkv[1].2, &qkv[3].2, &qkv[5].2], 1)));
        linear(&mut out, &format!("{p}.self_attention.dense"), &b.attn.o_proj);
        norm(&mut out, &format!("{p}.post_attention_layernorm"), &b.ffn_norm);
        linear(&mut out, &format!("{p}.mlp.dense_h_to_4h"), &car_folded(b)(&b.mlp.up_proj));
        linear(&mut out, &format!("{p}.mlp.dense_4h_to_h"), &b.mlp.down_proj);
    }
    norm(&mut out, "transformer.ln_f", &net.final_norm);
    out
}

/// `config.json` for a model that came from GGUF.
fn hf_config(model: &LanguageModel) -> Result<serde_json::Value> {
    let c = &model.config;
    let ids = |v: Option<u32>| v.map_or(serde_json::Value::Null, |i| i.into());
    let (theta, local) = match c.positions {
        Positions::Rope { theta, local_theta } => (theta, local_theta),
        Positions::Alibi => return Err(ModelError::Input("export of ALiBi models is not supported yet".into())),
    };
    let mut j = serde_json::json!({
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "rms_norm_eps": c.norm_eps,
        "tie_word_embeddings": c.tie_word_embeddings,
        "bos_token_id": ids(c.bos_token_id),
        "eos_token_id": c.eos_token_ids,
        "pad_token_id": ids(c.pad_token_id),
        "torch_dtype": "float32",
        "max_position_embeddings": 32768,
    });
    match c.architecture {
        Architecture::Gemma3 => {
            let window = c.layer_attention.iter().find_map(|a| match a {
                LayerAttention::Sliding { window } => Some(*window),
                LayerAttention::Full => None,
            });
            let types: Vec<&str> = c.layer_attention.iter().map(|a| if matches!(a, LayerAttention::Full) { "full_attention" } else { "sliding_attention" }).collect();
            j["architectures"] = serde_json::json!(["Gemma3ForCausalLM"]);
            j["model_type"] = "gemma3_text".into();
            j["hidden_activation"] = "gelu_pytorch_tanh".into();
            j["query_pre_attn_scalar"] = ((1.0 / (c.attention_scale * c.attention_scale)).round() as u64).into();
            j["sliding_window"] = window.into();
            j["layer_types"] = types.into();
            j["rope_parameters"] = serde_json::json!({
                "full_attention": { "rope_type": "default", "rope_theta": theta },
                "sliding_attention": { "rope_type": "default", "rope_theta": local.unwrap_or(theta) },
            });
        }
        Architecture::Llama => {
            j["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
            j["model_type"] = "llama".into();
            j["hidden_act"] = "silu".into();
            j["rope_parameters"] = serde_json::json!({ "rope_type": "default", "rope_theta": theta });
        }
        other => return Err(ModelError::Input(format!("export of {other:?} models is not supported yet"))),
    }
    Ok(j)
}

/// Writes `net` (the network of `model`, e.g. with trained weights merged) as a Hugging Face
/// folder in `out`.
pub fn write_hf_folder(model: &LanguageModel, net: &Transformer, out: &Path) -> Result<()> {
    let mut tensors = hf_tensors(net)?;
    let mut modeling = modeling::Modeling::of(net);
    if let Some(m) = &mut modeling {
        tensors.append(&mut m.tensors);
    }
    write_safetensors(&out.join("model.safetensors"), tensors)?;

    let source_config = model.source.join("config.json");
    let mut config = if source_config.is_file() { crate::arch::read_config_json(&source_config)? } else { hf_config(model)? };
    let code = modeling.as_ref().map(|m| m.apply(&mut config)).transpose()?;
    let config = serde_json::to_vec_pretty(&config).expect("plain JSON");
    crate::atomic::write_atomic(&out.join("config.json"), |w| w.write_all(&config))?;
    let code_path = out.join(modeling::FILE);
    match code {
        Some(code) => crate::atomic::write_atomic(&code_path, |w| w.write_all(code.as_bytes()))?,
        // A folder exported again without routing must not keep stale remote code.
        None if code_path.exists() => std::fs::remove_file(&code_path).map_err(|e| ModelError::io(&code_path, e))?,
        None => {}
    }
    let tokenizer = model.tokenizer.inner().to_string(true).map_err(|e| ModelError::Input(format!("tokenizer: {e}")))?;
    crate::atomic::write_atomic(&out.join("tokenizer.json"), |w| w.write_all(tokenizer.as_bytes()))
}

/// Writes f32 `tensors` (name, shape, values) as one safetensors file, atomically.
pub(crate) fn write_safetensors(path: &Path, tensors: Tensors) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView)> = bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches"))).collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let file = safetensors::serialize(views, Some(meta)).map_err(|e| ModelError::Input(format!("safetensors: {e}")))?;
    crate::atomic::write_atomic(path, |w| w.write_all(&file))
}
