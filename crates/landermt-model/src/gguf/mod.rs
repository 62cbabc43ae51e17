//! GGUF v2/v3 files: header, metadata and tensor directory, read from a memory map so that a
//! tensor is dequantised straight from the page cache into its one f32 buffer.
//!
//! Layout (ggml's `docs/gguf.md`): magic `GGUF`, version, tensor count, metadata count, the
//! metadata key/value pairs, the tensor infos (name, dims fastest-first, type, offset), padding
//! to `general.alignment` (default 32), then the tensor data.

mod dequant;
pub mod write;

pub use dequant::{GgmlType, dequantize};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// A metadata value. Arrays keep their element values (token lists are arrays of strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any integer type as u64 (GGUF writers disagree on which width they use).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One entry of the tensor directory. `dims` are in GGUF order (fastest-varying first), so a
/// Hugging Face `[out, in]` matrix appears here as `[in, out]`.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
    /// The shape in row-major (PyTorch/numpy) order: the GGUF dims reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// The file's bytes: memory-mapped from disk, or owned (parsed from memory).
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

pub struct GgufFile {
    path: PathBuf,
    map: Bytes,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile").field("path", &self.path).field("version", &self.version).field("metadata", &self.metadata.len()).field("tensors", &self.tensors.len()).finish()
    }
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| ModelError::io(&path, e))?;
        // SAFETY: the file is opened read-only; a concurrent writer truncating it would be a
        // user error that we cannot guard against with any file API.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
        Self::parse(path, Bytes::Map(map))
    }

    /// A GGUF file held in memory; `path` names it in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(path.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, map: Bytes) -> Result<Self> {
        let mut r = Reader { bytes: &map, pos: 0, path: &path };
        if r.take(4)? != b"GGUF" {
            return Err(ModelError::format(&path, "not a GGUF file (magic is not `GGUF`)"));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::unsupported(&path, format!("GGUF version {version} (2 and 3 are read)")));
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty)?;
            metadata.insert(key, value);
        }
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            if n_dims > 4 {
                return Err(ModelError::format(&path, format!("tensor `{name}` has {n_dims} dims")));
            }
            let dims = (0..n_dims).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>>>()?;
            // A header may declare anything: sizes that overflow cannot be in the file.
            if dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_none_or(|n| n > isize::MAX as usize) {
                return Err(ModelError::format(&path, format!("tensor `{name}`: dims {dims:?} overflow")));
            }
            let type_id = r.u32()?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| ModelError::unsupported(&path, format!("quantisation type id {type_id} of tensor `{name}`")))?;
            let rel = r.u64()? as usize;
            infos.push((name, dims, ggml_type, rel));
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32) as usize;
        if !alignment.is_power_of_two() {
            return Err(ModelError::format(&path, format!("general.alignment {alignment} is not a power of two")));
        }
        let data_start = r.pos.checked_next_multiple_of(alignment).ok_or_else(|| ModelError::format(&path, format!("general.alignment {alignment} is out of range")))?;
        let mut tensors = BTreeMap::new();
        for (name, dims, ggml_type, rel) in infos {
            let n: usize = dims.iter().product();
            if dims.first().is_some_and(|&d0| d0 % ggml_type.block_len() != 0) {
                return Err(ModelError::format(&path, format!("tensor `{name}`: row length {} is not a multiple of the {ggml_type:?} block", dims[0])));
            }
            let n_bytes = (n / ggml_type.block_len()).saturating_mul(ggml_type.block_bytes());
            let offset = data_start.saturating_add(rel);
            if offset.saturating_add(n_bytes) > map.len() {
                return Err(ModelError::format(&path, format!("tensor `{name}` needs bytes {offset}..{} but the file has {} (truncated?)", offset.saturating_add(n_bytes), map.len())));
            }
            tensors.insert(name.clone(), TensorInfo { name, dims, ggml_type, offset, n_bytes });
        }
        Ok(Self { path, map, version, metadata, tensors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A required metadata value, or an error naming the file and key.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.metadata.get(key).ok_or_else(|| ModelError::format(&self.path, format!("metadata key `{key}` is missing")))
    }

    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| ModelError::format(&self.path, format!("metadata `{key}` is {v:?}, not an integer")))
    }

    pub fn require_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| ModelError::format(&self.path, format!("metadata `{key}` is {v:?}, not a number")))
    }

    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: name.to_string() })
    }

    /// The raw bytes of a tensor as stored.
    pub fn raw(&self, name: &str) -> Result<&[u8]> {
        let info = self.info(name)?;
        Ok(&self.map[info.offset..info.offset + info.n_bytes])
    }

    /// A tensor dequantised to f32, with its row-major shape.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let info = self.info(name)?;
        let data = dequantize(info.ggml_type, self.raw(name)?, info.n_elements());
        Ok((data, info.shape()))
    }
}

/// A bounds-checked cursor: running off the end is a "truncated" error, not a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| ModelError::format(self.path, format!("truncated header: needs {n} bytes at offset {}", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String> {
        let len = self.u64()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ModelError::format(self.path, format!("string at offset {} is not UTF-8", self.pos - len)))
    }
    fn value(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                let elem = self.u32()?;
                // Arrays of arrays are not part of any model's metadata; nesting without bound
                // would recurse once per 12 bytes of the file.
                if elem == 9 {
                    return Err(ModelError::format(self.path, format!("nested metadata array at offset {}", self.pos)));
                }
                let len = self.u64()? as usize;
                // Each element takes at least one byte: refuse lengths the file cannot hold.
                if len > self.bytes.len() - self.pos {
                    return Err(ModelError::format(self.path, format!("array of {len} elements exceeds the file")));
                }
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(elem)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(ModelError::format(self.path, format!("unknown metadata value type {other}"))),
        })
    }
}
