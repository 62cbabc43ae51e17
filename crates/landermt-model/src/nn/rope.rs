//! Rotary position embeddings in Hugging Face's `rotate_half` layout. The cos/sin tables are
//! computed on the host in f32, as transformers computes them, from per-token positions (which
//! for left-padded rows start at the first real token). Where nothing tracks gradients the
//! rotation is one pass on the host ([`apply`]); built from tensor ops it takes six (two
//! halves, a negation, a concatenation, two products and a sum).

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

/// Head vectors per rayon task in [`apply`]'s one-pass rotation.
const ROWS: usize = 256;

/// cos and sin tables, each `[B, 1, T, head_dim]`, as tensors and as host copies for the
/// one-pass rotation.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    host: Arc<(Vec<f32>, Vec<f32>)>,
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
    RopeTables { cos: Tensor::from_data(TensorData::new(cos.clone(), shape), device), sin: Tensor::from_data(TensorData::new(sin.clone(), shape), device), host: Arc::new((cos, sin)) }
}

/// `x * cos + rotate_half(x) * sin` for `x: [B, heads, T, head_dim]`.
pub fn apply(x: Tensor<4>, tables: &RopeTables) -> Tensor<4> {
    if super::on_host(&x) { rotate_on_host(x, tables) } else { tensor_ops(x, tables) }
}

/// The rotation in one pass: for each pair (a, c) = (x[i], x[i + half]),
/// a·cos[i] − c·sin[i] and c·cos[i + half] + a·sin[i + half], the same products and sums as
/// [`tensor_ops`] (negation is exact), in place.
fn rotate_on_host(x: Tensor<4>, tables: &RopeTables) -> Tensor<4> {
    let (dims, device) = (x.dims(), x.device());
    let [_, heads, t, w] = dims;
    let half = w / 2;
    let (cos, sin) = (&tables.host.0, &tables.host.1);
    assert_eq!(cos.len(), dims[0] * t * w, "RoPE tables of {} values for {dims:?}", cos.len());
    let mut data: Vec<f32> = x.into_data().try_into_vec().expect("activations are f32");
    super::for_chunks(&mut data, ROWS * w, |task, rows| {
        for (i, x) in rows.chunks_exact_mut(w).enumerate() {
            // Vector g is (b, head, p); its tables are row b's at position p.
            let g = task * ROWS + i;
            let table = (g / (heads * t) * t + g % t) * w;
            let (c, s) = (&cos[table..][..w], &sin[table..][..w]);
            let (lo, hi) = x.split_at_mut(half);
            for j in 0..half {
                let (a, b) = (lo[j], hi[j]);
                lo[j] = a * c[j] + -b * s[j];
                hi[j] = b * c[half + j] + a * s[half + j];
            }
        }
    });
    Tensor::from_data(TensorData::new(data, dims), &device)
}

/// The rotation from tensor ops, which autodiff can differentiate.
fn tensor_ops(x: Tensor<4>, tables: &RopeTables) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x.mul(tables.cos.clone()).add(rotated.mul(tables.sin.clone()))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    /// The one-pass rotation equals the tensor ops exactly, on a strided input (heads swapped
    /// with positions, as attention makes them) with left-padded positions per row.
    #[test]
    fn host_rotation_equals_the_tensor_ops() {
        // 600 head vectors: more than one rayon task of the host rotation.
        let (b, h, t, w) = (2, 3, 100, 8);
        let positions = vec![(0..t as i64).collect(), (0..t as i64).map(|p| (p - 3).max(0)).collect()];
        let tables = super::tables(10_000.0, w, &positions, &Device::flex());
        let data: Vec<f32> = (0..b * h * t * w).map(|i| ((i * 7919 % 4001) as f32 / 4001.0 - 0.5) * 6.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [b, t, h, w]), &Device::flex()).swap_dims(1, 2);
        assert!(super::super::on_host(&x));
        let got: Vec<f32> = super::apply(x.clone(), &tables).into_data().try_into_vec().unwrap();
        let want: Vec<f32> = super::tensor_ops(x, &tables).into_data().try_into_vec().unwrap();
        assert_eq!(got, want);
    }
}
