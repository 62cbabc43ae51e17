//! Helpers shared by the integration tests: fixture paths and reference tensors.
#![allow(dead_code)]

use std::path::PathBuf;

use landermt_model::Batch;
use safetensors::{Dtype, SafeTensors};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Reference tensors written by Python (transformers, gguf), read back as f32 or i64.
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub fn open(path: PathBuf) -> Self {
        Self { bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) }
    }

    fn view(&self, name: &str) -> (Dtype, Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("reference has no tensor `{name}`"));
        (v.dtype(), v.shape().to_vec(), v.data().to_vec())
    }

    pub fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes).unwrap().tensor(name).is_ok()
    }

    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let (dtype, shape, data) = self.view(name);
        assert_eq!(dtype, Dtype::F32, "{name}");
        (data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(), shape)
    }

    pub fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let (dtype, shape, data) = self.view(name);
        assert_eq!(dtype, Dtype::I64, "{name}");
        (data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect(), shape)
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.i64(name).0.into_iter().map(|x| x as u32).collect()
    }

    /// The left-padded batch the reference was computed on (`batch_ids`, `batch_mask`).
    pub fn batch(&self) -> Batch {
        let (ids, shape) = self.i64("batch_ids");
        let (mask, _) = self.i64("batch_mask");
        Batch { ids: ids.iter().map(|&i| i as u32).collect(), mask: mask.iter().map(|&m| m != 0).collect(), rows: shape[0], len: shape[1] }
    }
}

/// The rows of `values` (`width` floats per position) at the batch's real tokens: padding
/// positions are masked queries whose outputs nobody reads.
pub fn real_positions(values: &[f32], batch: &Batch, width: usize) -> Vec<f32> {
    values.chunks_exact(width).zip(&batch.mask).filter(|(_, m)| **m).flat_map(|(row, _)| row.to_vec()).collect()
}

/// Largest absolute difference, with the index where it occurs.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).enumerate().fold((0.0, 0), |(m, at), (i, (x, y))| {
        let d = (x - y).abs();
        if d > m || d.is_nan() { (d, i) } else { (m, at) }
    })
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let (d, i) = max_abs_diff(got, want);
    eprintln!("{what}: max |diff| = {d:.2e}");
    assert!(d <= tol, "{what}: max |diff| = {d} at {i} (got {}, want {}), tolerance {tol}", got[i], want[i]);
}
