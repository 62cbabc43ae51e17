//! Rotary position embeddings in Hugging Face's `rotate_half` layout. The cos/sin tables are
//! computed on the host in f32, as transformers computes them, from per-token positions (which
//! for left-padded rows start at the first real token).

use burn::tensor::{Device, Tensor, TensorData};

/// cos and sin tables, each `[B, 1, T, head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

/// `inv_freq[i] = 1 / theta^(2i / dim)`, in f32 like transformers' default rope init.
pub fn inv_freq(theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect()
}

/// Tables for `positions` (`[B][T]`).
pub fn tables(theta: f64, head_dim: usize, positions: &[Vec<i64>], device: &Device) -> RopeTables {
    let inv = inv_freq(theta, head_dim);
    let (b, t) = (positions.len(), positions[0].len());
    let mut cos = Vec::with_capacity(b * t * head_dim);
    let mut sin = Vec::with_capacity(b * t * head_dim);
    for row in positions {
        for &p in row {
            let freqs: Vec<f32> = inv.iter().map(|&f| p as f32 * f).collect();
            // emb = cat(freqs, freqs)
            for _ in 0..2 {
                cos.extend(freqs.iter().map(|x| x.cos()));
                sin.extend(freqs.iter().map(|x| x.sin()));
            }
        }
    }
    let shape = [b, 1, t, head_dim];
    RopeTables {
        cos: Tensor::from_data(TensorData::new(cos, shape), device),
        sin: Tensor::from_data(TensorData::new(sin, shape), device),
    }
}

/// `x * cos + rotate_half(x) * sin` for `x: [B, heads, T, head_dim]`.
pub fn apply(x: Tensor<4>, tables: &RopeTables) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x.mul(tables.cos.clone()).add(rotated.mul(tables.sin.clone()))
}
