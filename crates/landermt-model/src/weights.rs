//! Checkpoint files as a map from Hugging Face tensor names to f32 host arrays.
//!
//! Both formats are memory-mapped and each tensor is converted into exactly one `Vec<f32>` when
//! it is asked for, so loading never holds more than the model plus one tensor. GGUF files are
//! read through the one name table in [`gguf_name`]; architecture-specific layout fixes
//! (LLaMA's q/k row permutation, BLOOM's fused QKV, Gemma's norm offset) live with each
//! architecture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::{Dtype, tensor::Metadata};

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// A dense f32 array in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

impl HostTensor {
    pub fn new(data: Vec<f32>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Self { data, shape }
    }

    /// The transpose of a 2-D array (Hugging Face `[out, in]` → Burn `[in, out]`).
    pub fn transposed(&self) -> Self {
        let [r, c] = self.shape[..] else { panic!("transposed() needs a matrix, got {:?}", self.shape) };
        let mut out = vec![0.0; r * c];
        for (i, row) in self.data.chunks_exact(c).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                out[j * r + i] = v;
            }
        }
        Self::new(out, vec![c, r])
    }

    /// Rows `start..end` of a matrix.
    pub fn rows(&self, start: usize, end: usize) -> Self {
        let c = self.shape[1..].iter().product::<usize>();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Self::new(self.data[start * c..end * c].to_vec(), shape)
    }
}

/// One safetensors file, memory-mapped with its parsed header.
pub struct SafetensorsFile {
    path: PathBuf,
    map: memmap2::Mmap,
    header_len: usize,
    metadata: Metadata,
}

pub enum Weights {
    /// `model.safetensors`, or the shards named by `model.safetensors.index.json`.
    Safetensors {
        files: Vec<SafetensorsFile>,
        index: BTreeMap<String, usize>,
        origin: PathBuf,
    },
    Gguf(GgufFile),
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weights({})", self.origin().display())
    }
}

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: read-only map of a checkpoint that nobody should be rewriting while we load it.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))
}

impl SafetensorsFile {
    fn open(path: &Path) -> Result<Self> {
        let map = map_file(path)?;
        // A header cut short reads as "invalid header length": say what happened instead.
        if let Some(declared) = map.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            && declared < (1 << 27)
            && 8 + declared > map.len() as u64
        {
            return Err(ModelError::format(path, format!("truncated: the header declares {declared} bytes but the file has only {}", map.len())));
        }
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
            let hint = match e {
                safetensors::SafeTensorError::MetadataIncompleteBuffer => " (truncated or padded file)",
                _ => "",
            };
            ModelError::format(path, format!("not a valid safetensors file: {e}{hint}"))
        })?;
        Ok(Self { path: path.to_path_buf(), map, header_len, metadata })
    }

    fn get(&self, name: &str) -> Result<HostTensor> {
        let info = self.metadata.info(name).ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: name.into() })?;
        let (start, end) = info.data_offsets;
        let bytes = &self.map[8 + self.header_len + start..8 + self.header_len + end];
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => {
                return Err(ModelError::unsupported(&self.path, format!("dtype {other:?} of tensor `{name}`")));
            }
        };
        Ok(HostTensor::new(data, info.shape.clone()))
    }
}

impl Weights {
    /// Opens the weights of a Hugging Face folder (single file or sharded) or a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            return if path.extension().is_some_and(|e| e == "gguf") {
                Ok(Self::Gguf(GgufFile::open(path)?))
            } else {
                let file = SafetensorsFile::open(path)?;
                let index = file.metadata.tensors().into_keys().map(|k| (k, 0)).collect();
                Ok(Self::Safetensors { files: vec![file], index, origin: path.to_path_buf() })
            };
        }
        let single = path.join("model.safetensors");
        let sharded = path.join("model.safetensors.index.json");
        if single.is_file() {
            return Self::open(&single);
        }
        if !sharded.is_file() {
            return Err(ModelError::io(&single, std::io::Error::new(std::io::ErrorKind::NotFound, "no model.safetensors or model.safetensors.index.json")));
        }
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(&sharded).map_err(|e| ModelError::io(&sharded, e))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| ModelError::format(&sharded, format!("bad index JSON: {e}")))?;
        let mut shard_ids: BTreeMap<String, usize> = BTreeMap::new();
        let mut files = Vec::new();
        let mut map = BTreeMap::new();
        for (tensor, shard) in index.weight_map {
            let id = match shard_ids.get(&shard) {
                Some(&id) => id,
                None => {
                    files.push(SafetensorsFile::open(&path.join(&shard))?);
                    shard_ids.insert(shard, files.len() - 1);
                    files.len() - 1
                }
            };
            map.insert(tensor, id);
        }
        Ok(Self::Safetensors { files, index: map, origin: sharded })
    }

    /// The file errors should name.
    pub fn origin(&self) -> &Path {
        match self {
            Self::Safetensors { origin, .. } => origin,
            Self::Gguf(g) => g.path(),
        }
    }

    pub fn gguf(&self) -> Option<&GgufFile> {
        match self {
            Self::Gguf(g) => Some(g),
            Self::Safetensors { .. } => None,
        }
    }

    /// Whether the checkpoint holds `name` (a Hugging Face name).
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::Safetensors { index, .. } => index.contains_key(name),
            Self::Gguf(g) => gguf_name(name, gguf_arch(g)).is_some_and(|n| g.tensors.contains_key(&n)),
        }
    }

    /// The tensor called `name` in Hugging Face naming, as stored (no layout fixes).
    pub fn get(&self, name: &str) -> Result<HostTensor> {
        match self {
            Self::Safetensors { files, index, origin } => match index.get(name) {
                Some(&i) => files[i].get(name),
                None => Err(ModelError::MissingTensor { path: origin.clone(), name: name.into() }),
            },
            Self::Gguf(g) => {
                let gname = gguf_name(name, gguf_arch(g)).ok_or_else(|| ModelError::MissingTensor { path: g.path().into(), name: format!("{name} (no GGUF equivalent)") })?;
                let (data, shape) = g.tensor_f32(&gname).map_err(|e| match e {
                    ModelError::MissingTensor { path, name: n } => ModelError::MissingTensor { path, name: format!("{n} (Hugging Face `{name}`)") },
                    other => other,
                })?;
                Ok(HostTensor::new(data, shape))
            }
        }
    }

    /// Like [`get`](Self::get), and checks the shape.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(ModelError::Shape { path: self.origin().to_path_buf(), name: name.into(), expected: shape.to_vec(), found: t.shape });
        }
        Ok(t)
    }
}

fn gguf_arch(g: &GgufFile) -> &str {
    g.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("")
}

/// The GGUF name of a Hugging Face tensor name (llama.cpp's `tensor_mapping.py`, for the
/// architectures we implement). BLOOM's names are accepted with or without `transformer.`.
/// `gguf_arch` is the file's `general.architecture`.
pub fn gguf_name(hf: &str, gguf_arch: &str) -> Option<String> {
    let hf = hf.strip_prefix("model.").or_else(|| hf.strip_prefix("transformer.")).unwrap_or(hf);
    let fixed = match hf {
        "embed_tokens.weight" | "word_embeddings.weight" => Some("token_embd.weight"),
        "word_embeddings_layernorm.weight" => Some("token_embd_norm.weight"),
        "word_embeddings_layernorm.bias" => Some("token_embd_norm.bias"),
        "norm.weight" | "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.into());
    }
    let rest = hf.strip_prefix("layers.").or_else(|| hf.strip_prefix("h."))?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let g = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" | "self_attention.dense" => "attn_output",
        "self_attention.query_key_value" => "attn_qkv",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "input_layernorm" => "attn_norm",
        // LLaMA's norm before the FFN is called post_attention_layernorm; Gemma's norm of that name
        // is applied to the attention output and its pre-FFN norm is pre_feedforward_layernorm.
        "post_attention_layernorm" if gguf_arch.starts_with("gemma") => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" | "mlp.dense_h_to_4h" => "ffn_up",
        "mlp.down_proj" | "mlp.dense_4h_to_h" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}
