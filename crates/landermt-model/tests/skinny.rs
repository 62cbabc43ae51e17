//! The decoding kernels for a tall matrix times a few columns (`landermt_model::skinny`), on
//! every instruction set this CPU has (AVX2; AVX-512F), against f64 products: f32 A, and bf16
//! A, whose products must be the f32 sums of the exact bf16 values.
//! Shapes cover row counts that are not multiples of the register block, odd k, one to 32
//! columns (more than 16 take AVX-512's two-vector panel, or two AVX2 panels), padded rows and transposed operands. A test of an instruction set the CPU lacks
//! says SKIPPED and which; the AVX2 ones run everywhere the crate's kernels do.
#![cfg(target_arch = "x86_64")]

use burn::tensor::{DType, Device, Tensor, TensorData};
use half::bf16;
use landermt_model::Backend;
use landermt_model::skinny::{self, Isa};

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) % 2001) as f32 - 1000.0) / 1000.0).collect()
}

/// `A[m, k] (row stride a_rs) · B[k, n]` in f64, and `Σ_p |a||b|` per entry (the scale of the
/// rounding error).
fn reference(a: &[f32], a_rs: usize, b: &[f32], (m, k, n): (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let mut exact = vec![0f64; m * n];
    let mut scale = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let (x, y) = (a[i * a_rs + p] as f64, b[p * n + j] as f64);
                exact[i * n + j] += x * y;
                scale[i * n + j] += (x * y).abs();
            }
        }
    }
    (exact, scale)
}

/// Every entry within `rel · Σ|a||b|` (+ a tiny absolute floor) of the f64 product.
fn assert_within(what: &str, got: &[f32], (exact, scale): &(Vec<f64>, Vec<f64>), rel: f64) {
    for (i, ((&g, &e), &s)) in got.iter().zip(exact).zip(scale).enumerate() {
        assert!((g as f64 - e).abs() <= rel * s + 1e-30, "{what}: entry {i} is {g}, the f64 product {e} (Σ|ab| {s}, allowed {})", rel * s);
    }
}

const SHAPES: [(usize, usize, usize); 9] = [(7, 5, 3), (4099, 72, 16), (2053, 33, 9), (1031, 640, 2), (300, 641, 1), (13, 7, 16), (1037, 65, 32), (611, 129, 17), (2050, 40, 24)];

/// f32 summation's bound for k terms, with room for the few extra roundings of a blocked sum.
fn f32_bound(k: usize) -> f64 {
    (k as f64 + 4.0) * f64::from(f32::EPSILON) / 2.0
}

fn isas(what: &str) -> Vec<Isa> {
    let isas: Vec<Isa> = [Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.available()).collect();
    if !isas.contains(&Isa::Avx512) {
        eprintln!("SKIPPED {what} on AVX-512: this CPU has no AVX-512F");
    }
    isas
}

#[test]
fn f32_kernels_match_f64_products() {
    for isa in isas("f32 kernels") {
        for &(m, k, n) in SHAPES.iter().filter(|s| s.2 > 1) {
            let a_rs = k + 3; // padded rows
            let (a, b) = (values(m * a_rs, 1), values(k * n, 2));
            let want = reference(&a, a_rs, &b, (m, k, n));
            let mut out = vec![0f32; m * n];
            // SAFETY: the buffers hold the matrices their strides describe; `isa` is available.
            unsafe { skinny::product_with(isa, m, n, k, a.as_ptr(), a_rs as isize, (b.as_ptr(), n as isize, 1), (out.as_mut_ptr(), n as isize, 1)) };
            assert_within(&format!("f32 {isa:?} {m}x{k}x{n}"), &out, &want, f32_bound(k));
            // Bᵀ stored row-major (strides (1, k)), out written transposed (strides (1, m)).
            let bt: Vec<f32> = (0..n).flat_map(|j| (0..k).map(move |p| (j, p))).map(|(j, p)| b[p * n + j]).collect();
            let mut out_t = vec![0f32; m * n];
            // SAFETY: as above.
            unsafe { skinny::product_with(isa, m, n, k, a.as_ptr(), a_rs as isize, (bt.as_ptr(), 1, k as isize), (out_t.as_mut_ptr(), 1, m as isize)) };
            let back: Vec<f32> = (0..m * n).map(|x| out_t[(x % n) * m + x / n]).collect();
            assert_within(&format!("f32 {isa:?} {m}x{k}x{n} transposed"), &back, &want, f32_bound(k));
        }
    }
}

/// The bf16 kernels: the f32 sum of the exact bf16 values, with B's f32 bits kept.
#[test]
fn bf16_kernels_match_f64_products_of_the_bf16_values() {
    for isa in isas("bf16 kernels") {
        for &(m, k, n) in &SHAPES {
            let a_rs = k + 1;
            let a16: Vec<bf16> = values(m * a_rs, 3).into_iter().map(bf16::from_f32).collect();
            let a: Vec<f32> = a16.iter().map(|x| x.to_f32()).collect();
            let b = values(k * n, 4);
            let want = reference(&a, a_rs, &b, (m, k, n));
            let mut out = vec![0f32; m * n];
            // SAFETY: the buffers hold the matrices their strides describe; `isa` is available.
            unsafe { skinny::product_bf16_with(isa, m, n, k, a16.as_ptr(), a_rs as isize, (b.as_ptr(), n as isize, 1), (out.as_mut_ptr(), n as isize, 1)) };
            assert_within(&format!("bf16 {isa:?} {m}x{k}x{n}"), &out, &want, f32_bound(k));
        }
        // B that bf16 cannot hold (1 + 2⁻¹⁰ rounds to 1): a kernel that rounded B too would
        // give k instead of k·(1 + 2⁻¹⁰).
        for n in [1, 2] {
            let (m, k) = (12, 64);
            let a16 = vec![bf16::ONE; m * k];
            let b = vec![1.0 + 2f32.powi(-10); k * n];
            let mut out = vec![0f32; m * n];
            // SAFETY: as above.
            unsafe { skinny::product_bf16_with(isa, m, n, k, a16.as_ptr(), k as isize, (b.as_ptr(), n as isize, 1), (out.as_mut_ptr(), n as isize, 1)) };
            assert!(out.iter().all(|&x| x == 64.0 + 2f32.powi(-4)), "bf16 {isa:?}: B's low bits lost: {:?}", &out[..n]);
        }
    }
}

/// A row's sums do not depend on how many columns share the product: 32 columns in one
/// product equal its two 16-column halves, bit for bit (a batch's row decodes the same
/// whatever else is in the batch).
#[test]
fn wide_products_equal_narrow_ones_bit_for_bit() {
    let (m, k, n) = (1031, 67, 32);
    let a = values(m * k, 7);
    let a16: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let b = values(k * n, 8);
    for isa in isas("wide products") {
        // B's columns `cols` as a row-major k × cols matrix.
        let columns = |cols: std::ops::Range<usize>| -> Vec<f32> { (0..k).flat_map(|p| cols.clone().map(move |j| (p, j))).map(|(p, j)| b[p * n + j]).collect() };
        let product = |cols: std::ops::Range<usize>, bf: bool| -> Vec<f32> {
            let (bc, w) = (columns(cols.clone()), cols.len());
            let mut out = vec![0f32; m * w];
            // SAFETY: the buffers hold the matrices their strides describe; `isa` is available.
            unsafe {
                let (rhs, o) = ((bc.as_ptr(), w as isize, 1), (out.as_mut_ptr(), w as isize, 1));
                if bf { skinny::product_bf16_with(isa, m, w, k, a16.as_ptr(), k as isize, rhs, o) } else { skinny::product_with(isa, m, w, k, a.as_ptr(), k as isize, rhs, o) }
            }
            out
        };
        for bf in [false, true] {
            let wide = product(0..n, bf);
            let (left, right) = (product(0..16, bf), product(16..n, bf));
            for i in 0..m {
                let narrow: Vec<u32> = left[i * 16..][..16].iter().chain(&right[i * 16..][..16]).map(|x| x.to_bits()).collect();
                let got: Vec<u32> = wide[i * n..][..n].iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, narrow, "{isa:?} bf16={bf}: row {i} of 32 columns differs from its two 16-column halves");
            }
        }
    }
}

/// flex hands a `dtype = "bf16"` model's decoding products to the kernels: the tied head
/// (`E · hᵀ`) and a few rows against a column-major weight, one row included.
#[test]
fn flex_sends_decoding_bf16_products_to_the_kernels() {
    let device: Device = Backend::Flex.device().unwrap();
    let (m, k) = (3001, 64);
    let e = values(m * k, 5);
    let e16: Vec<f32> = e.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    let et = Tensor::<2>::from_data(TensorData::new(e.clone(), [m, k]), (&device, DType::BF16));
    for n in [1, 5, 16, 32] {
        let h = values(k * n, 6);
        let want = reference(&e16, k, &h, (m, k, n));
        let before = skinny::bf16_products();
        let got = et.clone().matmul(Tensor::<2>::from_data(TensorData::new(h.clone(), [k, n]), &device));
        assert_within(&format!("flex head 3001x64x{n}"), &got.into_data().try_into_vec::<f32>().unwrap(), &want, f32_bound(k));
        assert_eq!(skinny::bf16_products() - before, 1, "the head with {n} columns did not reach the kernel");
        // x[n, k] · W with W = Eᵀ stored column-major: (E · xᵀ)ᵀ.
        let x = Tensor::<2>::from_data(TensorData::new(h.clone(), [k, n]), &device).transpose();
        let x = Tensor::<2>::from_data(x.into_data(), &device);
        let before = skinny::bf16_products();
        let got = x.matmul(et.clone().transpose()).transpose();
        assert_within(&format!("flex projection {n}x64x3001"), &got.into_data().try_into_vec::<f32>().unwrap(), &want, f32_bound(k));
        assert_eq!(skinny::bf16_products() - before, 1, "{n} rows against a column-major weight did not reach the kernel");
    }
}
