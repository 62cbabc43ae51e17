//! A network as a GGUF file in llama.cpp's conventions (shared/notes' GGUF pitfalls, read in
//! reverse): llama.cpp's tensor names, dims fastest-first, LLaMA's q and k rows permuted for its
//! interleaved RoPE, Gemma's norms stored as `w + 1`, 1-D tensors in f32, and the tokenizer in
//! `tokenizer.ggml.*`. Only what folds into plain weights can be written; the metadata must say
//! everything a GGUF reader needs, so a Gemma 3 whose settings differ from what GGUF readers
//! assume is refused rather than written wrong.

use std::path::Path;

use half::{bf16, f16};

use super::hf_tensors;
use crate::config::{Architecture, LayerAttention, Positions};
use crate::error::{ModelError, Result};
use crate::weights::{HostTensor, gguf_name};
use crate::{LanguageModel, Transformer};

/// The element type of the 2-D weights (`--gguf-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GgufType {
    F32,
    F16,
    Bf16,
    Q8_0,
}

impl GgufType {
    fn ggml_id(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 8,
            GgufType::Bf16 => 30,
        }
    }
    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
            GgufType::Bf16 => 32,
        }
    }
}

impl std::str::FromStr for GgufType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("unknown GGUF type `{s}` (f32 | f16 | bf16 | q8_0)"))
    }
}

/// A metadata value, as GGUF encodes it.
enum Meta {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

impl Meta {
    /// The value's GGUF type id and its bytes, as [`crate::gguf::write::header`] takes them.
    fn typed(&self) -> (u32, Vec<u8>) {
        use crate::gguf::write::{string, string_array};
        let array = |ty: u32, n: usize, items: Vec<u8>| [ty.to_le_bytes().as_slice(), &(n as u64).to_le_bytes(), &items].concat();
        match self {
            Meta::U32(v) => (4, v.to_le_bytes().to_vec()),
            Meta::F32(v) => (6, v.to_le_bytes().to_vec()),
            Meta::Bool(v) => (7, vec![*v as u8]),
            Meta::Str(s) => (8, string(s)),
            Meta::Strs(v) => (9, string_array(&v.iter().map(String::as_str).collect::<Vec<_>>())),
            Meta::F32s(v) => (9, array(6, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect())),
            Meta::I32s(v) => (9, array(5, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect())),
        }
    }
}

/// Writes `net` (of `model`) as one GGUF file at `out`, its 2-D weights as `ty`.
pub fn write_gguf(model: &LanguageModel, net: &Transformer, out: &Path, ty: GgufType) -> Result<()> {
    let arch = gguf_arch(model)?;
    if super::modeling::Modeling::of(net).is_some() {
        return Err(ModelError::Input(
            "GGUF export: token-dependent CAR (`taylor`, `learned`) and bottleneck adapters need code that a GGUF file cannot carry; `route.car = \"static\"` or `\"off\"` fold into plain weights, and `--format hf` writes the others with their code".into(),
        ));
    }
    let mut meta = architecture_meta(model, arch, ty);
    meta.extend(tokenizer_meta(model)?);
    let c = &model.config;
    let mut tensors = Vec::new();
    for (name, shape, mut values) in hf_tensors(net)? {
        let gguf = gguf_name(&name, arch).ok_or_else(|| ModelError::Input(format!("no GGUF name for `{name}`")))?;
        if arch == "llama" && (gguf.ends_with("attn_q.weight") || gguf.ends_with("attn_k.weight")) {
            let heads = if gguf.ends_with("attn_q.weight") { c.num_heads } else { c.num_kv_heads };
            values = crate::arch::llama::permute_rows(HostTensor::new(values, shape.clone()), heads).data;
        }
        if arch == "gemma3" && gguf.contains("norm") {
            values.iter_mut().for_each(|w| *w += 1.0);
        }
        if arch == "bloom" && gguf.contains("attn_qkv") {
            // transformers' per-head interleaving to llama.cpp's [Q | K | V] blocks.
            let parts = crate::arch::bloom::split_qkv(&HostTensor::new(values, shape.clone()), c.num_heads, c.head_dim, true);
            values = parts.into_iter().flat_map(|t| t.data).collect();
        }
        tensors.push((gguf, shape, values));
    }
    let bytes = encode(&meta, &tensors, ty);
    crate::atomic::write_atomic(out, |w| w.write_all(&bytes))
}

/// llama.cpp's architecture name, after checking that GGUF's metadata can say all of `model`.
fn gguf_arch(model: &LanguageModel) -> Result<&'static str> {
    let c = &model.config;
    let refuse = |why: String| Err(ModelError::Input(format!("GGUF export: {why}")));
    match c.architecture {
        Architecture::Llama if c.attention_bias || c.qk_norm => refuse("LLaMA-family models with q/k/v biases or q/k norms (Qwen2, Qwen3) are not written yet; `--format hf` exports them".into()),
        Architecture::Llama if c.layer_attention.iter().any(|a| *a != LayerAttention::Full) => refuse("sliding-window attention has no key in llama.cpp's `llama` metadata".into()),
        Architecture::Llama => Ok("llama"),
        Architecture::Gemma3 => {
            // What GGUF readers assume for Gemma 3 (transformers' defaults, arch/gemma3.rs).
            let window = c.layer_attention.iter().find_map(|a| if let LayerAttention::Sliding { window } = a { Some(*window) } else { None }).unwrap_or(0);
            let pattern: Vec<bool> = (0..c.num_layers).map(|i| (i + 1) % 6 == 0).collect();
            let global: Vec<bool> = c.layer_attention.iter().map(|a| *a == LayerAttention::Full).collect();
            let local_theta = match c.positions {
                Positions::Rope { local_theta, .. } => local_theta.unwrap_or(10_000.0),
                Positions::Alibi => 0.0,
            };
            let scalar = 1.0 / (c.attention_scale * c.attention_scale);
            if global != pattern || (scalar - 256.0).abs() > 1e-6 || local_theta != 10_000.0 || window == 0 {
                return refuse(format!(
                    "GGUF readers assume Gemma 3's global layers every 6th (this model: {global:?}), query_pre_attn_scalar 256 (this model: {scalar}) and a local RoPE base of 10000 (this model: {local_theta}); written as GGUF, this model would be read as another one. `--format hf` exports it"
                ));
            }
            Ok("gemma3")
        }
        Architecture::Bloom => Ok("bloom"),
    }
}

fn architecture_meta(model: &LanguageModel, arch: &str, ty: GgufType) -> Vec<(String, Meta)> {
    let c = &model.config;
    let theta = match c.positions {
        Positions::Rope { theta, .. } => theta,
        Positions::Alibi => 0.0,
    };
    let key = |k: &str| format!("{arch}.{k}");
    let mut m = vec![
        ("general.architecture".to_string(), Meta::Str(arch.into())),
        ("general.name".into(), Meta::Str(model.source.file_name().map_or("landermt".into(), |n| n.to_string_lossy().into_owned()))),
        ("general.alignment".into(), Meta::U32(ALIGNMENT as u32)),
        ("general.file_type".into(), Meta::U32(ty.file_type())),
        (key("context_length"), Meta::U32(context_length(model))),
        (key("embedding_length"), Meta::U32(c.hidden_size as u32)),
        (key("block_count"), Meta::U32(c.num_layers as u32)),
        (key("feed_forward_length"), Meta::U32(c.intermediate_size as u32)),
        (key("attention.head_count"), Meta::U32(c.num_heads as u32)),
        (key("attention.head_count_kv"), Meta::U32(c.num_kv_heads as u32)),
        (key("attention.key_length"), Meta::U32(c.head_dim as u32)),
        (key("attention.value_length"), Meta::U32(c.head_dim as u32)),
        (key("attention.layer_norm_rms_epsilon"), Meta::F32(c.norm_eps as f32)),
        (key("rope.freq_base"), Meta::F32(theta as f32)),
        (key("vocab_size"), Meta::U32(c.vocab_size as u32)),
    ];
    if arch == "llama" {
        m.push((key("rope.dimension_count"), Meta::U32(c.head_dim as u32)));
    }
    if arch == "bloom" {
        // ALiBi: no RoPE keys; LayerNorm's epsilon under its own key.
        m.retain(|(k, _)| !k.contains("rope.") && !k.contains("rms_epsilon"));
        m.push((key("attention.layer_norm_epsilon"), Meta::F32(c.norm_eps as f32)));
    }
    if let Some(window) = c.layer_attention.iter().find_map(|a| if let LayerAttention::Sliding { window } = a { Some(*window) } else { None }) {
        m.push((key("attention.sliding_window"), Meta::U32(window as u32)));
    }
    m
}

/// The context length GGUF records: the source's `max_position_embeddings` (or `n_positions`),
/// or that of a GGUF source; 8192 where neither says (our configuration does not keep it).
fn context_length(model: &LanguageModel) -> u32 {
    let from_json = || -> Option<u64> {
        let config = crate::arch::read_config_json(&model.source.join("config.json")).ok()?;
        let c = config.get("text_config").unwrap_or(&config);
        c.get("max_position_embeddings").or_else(|| c.get("n_positions")).and_then(serde_json::Value::as_u64)
    };
    let from_gguf = || -> Option<u64> {
        let g = crate::gguf::GgufFile::open(&model.source).ok()?;
        let arch = g.get("general.architecture")?.as_str()?.to_string();
        g.get(&format!("{arch}.context_length"))?.as_u64()
    };
    from_json().or_else(from_gguf).map_or(8192, |n| n.min(u32::MAX as u64) as u32)
}

/// `tokenizer.ggml.*` from the model's `tokenizer.json`: `llama` (SentencePiece-style BPE with
/// byte fallback) or `gpt2` (byte-level BPE), with the merges, so that the reader builds the
/// same tokenizer.
fn tokenizer_meta(model: &LanguageModel) -> Result<Vec<(String, Meta)>> {
    let json: serde_json::Value = serde_json::from_str(&model.tokenizer.inner().to_string(false).map_err(|e| ModelError::Input(format!("tokenizer: {e}")))?).expect("tokenizers writes JSON");
    let bpe = &json["model"];
    if bpe["type"] != "BPE" {
        return Err(ModelError::Input(format!("GGUF export: a `{}` tokenizer model (BPE is written)", bpe["type"])));
    }
    let byte_level = json.to_string().contains("\"ByteLevel\"");
    let vocab = bpe["vocab"].as_object().expect("BPE vocab");
    let mut tokens = vec![String::new(); model.config.vocab_size];
    for (t, id) in vocab {
        if let Some(slot) = id.as_u64().and_then(|i| tokens.get_mut(i as usize)) {
            *slot = t.clone();
        }
    }
    let mut types = vec![1i32; tokens.len()];
    for a in json["added_tokens"].as_array().into_iter().flatten() {
        if let (Some(id), Some(t)) = (a["id"].as_u64(), a["content"].as_str())
            && (id as usize) < tokens.len()
        {
            tokens[id as usize] = t.into();
            types[id as usize] = if a["special"] == true { 3 } else { 4 };
        }
    }
    for (i, t) in tokens.iter_mut().enumerate() {
        if !byte_level && t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') {
            types[i] = 6;
        }
        if t.is_empty() {
            // An id no token claims: llama.cpp pads vocabularies the same way.
            *t = format!("[PAD{i}]");
            types[i] = 5;
        }
    }
    let merges: Vec<String> = bpe["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(pair) => Some(format!("{} {}", pair[0].as_str()?, pair[1].as_str()?)),
            _ => None,
        })
        .collect();
    let c = &model.config;
    let mut m = vec![
        ("tokenizer.ggml.model".to_string(), Meta::Str(if byte_level { "gpt2" } else { "llama" }.into())),
        ("tokenizer.ggml.tokens".into(), Meta::Strs(tokens.clone())),
        // With the merges given, readers take merge order from them; the scores only rank.
        ("tokenizer.ggml.scores".into(), Meta::F32s((0..tokens.len()).map(|i| -(i as f32)).collect())),
        ("tokenizer.ggml.token_type".into(), Meta::I32s(types)),
        ("tokenizer.ggml.merges".into(), Meta::Strs(merges)),
        ("tokenizer.ggml.add_bos_token".into(), Meta::Bool(json["post_processor"].to_string().contains("SpecialToken") && c.bos_token_id.is_some())),
        ("tokenizer.ggml.add_eos_token".into(), Meta::Bool(false)),
    ];
    if byte_level {
        m.push(("tokenizer.ggml.pre".into(), Meta::Str("gpt-2".into())));
    }
    let ids = [("bos_token_id", c.bos_token_id), ("eos_token_id", c.eos_token_ids.first().copied()), ("padding_token_id", c.pad_token_id)];
    m.extend(ids.into_iter().filter_map(|(k, id)| Some((format!("tokenizer.ggml.{k}"), Meta::U32(id?)))));
    Ok(m)
}

const ALIGNMENT: usize = 32;

/// The element type a tensor is written in: `ty` for matrices whose rows fill whole blocks,
/// f16 for a q8_0 matrix whose rows do not (as llama.cpp falls back), f32 for vectors.
fn tensor_type(shape: &[usize], ty: GgufType) -> GgufType {
    match ty {
        _ if shape.len() < 2 => GgufType::F32,
        GgufType::Q8_0 if !shape[shape.len() - 1].is_multiple_of(32) => GgufType::F16,
        other => other,
    }
}

fn tensor_bytes(values: &[f32], ty: GgufType) -> Vec<u8> {
    match ty {
        GgufType::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgufType::F16 => values.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        GgufType::Bf16 => values.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
        GgufType::Q8_0 => values.chunks(32).flat_map(q8_0_block).collect(),
    }
}

/// ggml's `quantize_row_q8_0_ref`: a block's f16 scale `max|x|/127`, then 32 rounded int8s.
fn q8_0_block(x: &[f32]) -> Vec<u8> {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = f16::from_f32(d).to_le_bytes().to_vec();
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
    out
}

fn encode(meta: &[(String, Meta)], tensors: &[(String, Vec<usize>, Vec<f32>)], ty: GgufType) -> Vec<u8> {
    let kv: Vec<(&str, u32, Vec<u8>)> = meta.iter().map(|(k, v)| (k.as_str(), v.typed())).map(|(k, (t, b))| (k, t, b)).collect();
    let (mut infos, mut data) = (Vec::new(), Vec::new());
    for (name, shape, values) in tensors {
        let t = tensor_type(shape, ty);
        // GGUF lists dims fastest-first.
        infos.push((name.as_str(), shape.iter().rev().map(|&d| d as u64).collect(), t.ggml_id(), data.len() as u64));
        data.extend(tensor_bytes(values, t));
        data.resize(data.len().next_multiple_of(ALIGNMENT), 0);
    }
    let mut out = crate::gguf::write::header(&kv, &infos);
    out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    out.extend(data);
    out
}
