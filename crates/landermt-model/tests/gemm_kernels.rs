//! Both f32 GEMM kernels of the flex backend, OpenBLAS (loaded at run time, `landermt_model::blas`)
//! and the pure-Rust `gemm`, checked against independent references: strided and transposed
//! products against an f64 triple loop, and the tiny fixture models against transformers'
//! logits (tests/fixtures/hf-tiny). The kernel is process-global, so everything runs in one
//! test, in order. OpenBLAS is fetched into the cache when missing (pip, PyPI); where it cannot
//! be had, the test says so and fails only with `LANDERMT_REQUIRE_BLAS=1`. MKL is checked the
//! same way where it is in the cache (`cargo xtask fetch-blas --mkl`, which `.ci/run` runs on
//! x86_64 Linux); elsewhere its half says SKIPPED, and fails with `LANDERMT_REQUIRE_MKL=1`.

mod common;

use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use common::{Reference, assert_close, fixtures, real_positions};
use landermt_model::blas::{self, Kernel};
use landermt_model::{Backend, LanguageModel, Taps};

/// `a · b` in f64, from row-major data.
fn reference_product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>() as f32;
        }
    }
    out
}

fn data<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Products in every layout flex hands over: plain, either operand transposed (a strided view),
/// a column slice, a broadcast batch, and sizes large enough to run multi-threaded.
fn check_products(device: &Device, kernel: &str) {
    // The tall ones with 2..=16 columns are the decoding head's shape (`landermt_model::skinny`);
    // the wide ones with 2..=16 rows, a decoding step's projections (skinny, for a column-major
    // rhs: the transposed case below).
    for &(m, k, n) in &[(3, 5, 7), (64, 96, 80), (256, 320, 288), (1, 640, 200), (300, 64, 1), (4099, 72, 16), (2053, 33, 9), (1024, 640, 2), (16, 640, 300), (5, 72, 1030)] {
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), device);
        let b = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), device);
        let (av, bv) = (data(a.clone()), data(b.clone()));
        let want = reference_product(&av, &bv, m, k, n);
        let tol = 1e-4 * (k as f32).sqrt();
        assert_close(&format!("{kernel} {m}x{k}x{n}"), &data(a.clone().matmul(b.clone())), &want, tol);
        // Transposed views: (aᵀ)ᵀ · (bᵀ)ᵀ with the transposes materialised first.
        let at = Tensor::<2>::from_data(a.clone().transpose().into_data(), device).transpose();
        let bt = Tensor::<2>::from_data(b.clone().transpose().into_data(), device).transpose();
        assert_close(&format!("{kernel} {m}x{k}x{n} transposed"), &data(at.matmul(bt)), &want, tol);
        // A column slice of a wider rhs (row stride > n).
        let wide = Tensor::cat(vec![b.clone(), b.clone()], 1).slice([0..k, 0..n]);
        assert_close(&format!("{kernel} {m}x{k}x{n} sliced"), &data(a.clone().matmul(wide)), &want, tol);
        // A batch of 3 against one broadcast weight.
        let batched = Tensor::stack::<3>(vec![a.clone(), a.clone(), a], 0).matmul(b.unsqueeze::<3>());
        let want3: Vec<f32> = want.iter().cycle().take(3 * m * n).copied().collect();
        assert_close(&format!("{kernel} {m}x{k}x{n} batched"), &data(batched), &want3, tol);
    }
}

fn transposed(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|j| (0..rows).map(move |i| v[i * cols + j])).collect()
}

/// A random `[rows, cols]` bf16 matrix, its values (exactly representable in f32), and the same
/// matrix stored transposed and viewed back (unit row stride, as autodiff's `Wᵀ`).
fn bf16_matrix(rows: usize, cols: usize, device: &Device) -> (Tensor<2>, Vec<f32>, Tensor<2>) {
    let w = Tensor::<2>::random([rows, cols], Distribution::Normal(0.0, 1.0), device).cast(DType::BF16);
    let values = data(w.clone().cast(DType::F32));
    let stored_t = Tensor::<2>::from_data(TensorData::new(transposed(&values, rows, cols), [cols, rows]), (device, DType::BF16));
    (w, values, stored_t.transpose())
}

/// f32 activations against bf16 weights (`model.dtype = "bf16"`), the weight on either side,
/// stored plainly or transposed, over more than one of the blocks flex widens at a time (2^20
/// elements; 16 rows at a time where the rows are longer than 4096), and the activation
/// gradient that autodiff forms through them: all against f64 products of the bf16 values.
fn check_mixed_products(device: &Device, kernel: &str) {
    // Weight on the right, `x[m, k] · W[k, n]`: two column blocks at k = 640.
    for &(m, k, n) in &[(5, 64, 3), (37, 640, 2000)] {
        let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), device);
        let xv = data(x.clone());
        let (w, wv, w_t) = bf16_matrix(k, n, device);
        let want = reference_product(&xv, &wv, m, k, n);
        let tol = 1e-4 * (k as f32).sqrt();
        assert_close(&format!("{kernel} f32·bf16 {m}x{k}x{n}"), &data(x.clone().matmul(w.clone())), &want, tol);
        assert_close(&format!("{kernel} f32·bf16 {m}x{k}x{n} transposed"), &data(x.clone().matmul(w_t)), &want, tol);
        // ∂/∂x of Σ (x·W)∘g is g·Wᵀ, a product with the transposed bf16 weight.
        let ad = device.clone().autodiff();
        let xa = Tensor::<2>::from_data(x.into_data(), &ad).require_grad();
        let g = Tensor::<2>::random([m, n], Distribution::Normal(0.0, 1.0), device);
        let gv = data(g.clone());
        let wa = Tensor::<2>::from_data(w.into_data(), (&ad, DType::BF16));
        let grads = xa.clone().matmul(wa).mul(Tensor::from_data(g.into_data(), &ad)).sum().backward();
        let got = data(xa.grad(&grads).unwrap());
        assert_close(&format!("{kernel} f32·bf16 {m}x{k}x{n} gradient"), &got, &reference_product(&gv, &transposed(&wv, k, n), m, n, k), 1e-4 * (n as f32).sqrt());
    }
    // Weight on the left, `E[m, k] · h[k, n]` (a tied head): several row blocks, a tall
    // decoding-head shape, and `Eᵀ · g` with rows longer than 4096.
    for &(m, k, n) in &[(20000, 64, 9), (600, 5000, 3)] {
        let (e, ev, e_t) = bf16_matrix(m, k, device);
        let h = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), device);
        let hv = data(h.clone());
        let want = reference_product(&ev, &hv, m, k, n);
        let tol = 1e-4 * (k as f32).sqrt();
        assert_close(&format!("{kernel} bf16·f32 {m}x{k}x{n}"), &data(e.matmul(h.clone())), &want, tol);
        assert_close(&format!("{kernel} bf16·f32 {m}x{k}x{n} transposed"), &data(e_t.matmul(h)), &want, tol);
    }
}

/// Logits of every tiny fixture against transformers', single prompts and a padded batch.
fn check_fixtures(device: &Device, kernel: &str) -> Vec<Vec<f32>> {
    let mut all = Vec::new();
    for name in ["bloom-tiny", "llama-tiny", "gemma3-tiny", "qwen2-tiny"] {
        let dir = fixtures().join("hf-tiny").join(name);
        let model = LanguageModel::load(&dir, device).unwrap();
        let reference = Reference::open(dir.join("reference.safetensors"));
        let batch = reference.batch();
        let logits = data(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
        let vocab = model.config.vocab_size;
        let real = |v: &[f32]| real_positions(v, &batch, vocab);
        let (want, _) = reference.f32("batch_logits");
        assert_close(&format!("{name}/{kernel} batch logits"), &real(&logits), &real(&want), 1e-4);
        // The decoding layout (weights column-major) computes the same logits.
        let model = model.into_decoding();
        let decoding = data(model.net.logits(model.net.forward(&batch, None, &mut Taps::none())));
        assert_close(&format!("{name}/{kernel} batch logits, decoding layout"), &real(&decoding), &real(&want), 1e-4);
        all.push(real(&logits));
    }
    all
}

#[test]
fn openblas_and_pure_rust_gemm_match_references() {
    let device = Backend::Flex.device().unwrap();
    assert_eq!(blas::use_rust(), Kernel::Rust);
    check_products(&device, "rust");
    check_mixed_products(&device, "rust");
    let rust_logits = check_fixtures(&device, "rust");

    check_mkl(&device, &rust_logits);

    let path = match blas::fetch() {
        Ok(p) => p,
        Err(e) if std::env::var_os("LANDERMT_REQUIRE_BLAS").is_none() => {
            eprintln!("SKIPPED the OpenBLAS half: it cannot be had here ({e}); the pure-Rust half passed");
            return;
        }
        Err(e) => panic!("LANDERMT_REQUIRE_BLAS is set but OpenBLAS cannot be had: {e}"),
    };
    let kernel = blas::use_openblas(&path, false).unwrap();
    assert!(matches!(kernel, Kernel::Openblas { .. }), "{kernel:?}");
    assert_eq!(blas::current(), kernel);
    // The fixtures are too small for multi-threaded products: send them all to OpenBLAS.
    blas::route_all_products(true);
    let before = blas::library_products();
    check_products(&device, "openblas");
    check_mixed_products(&device, "openblas");
    let blas_logits = check_fixtures(&device, "openblas");
    assert!(blas::library_products() > before + 100, "the products did not reach OpenBLAS");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // Three tall shapes × plain, sliced and batched (the transposed lhs is not row-major),
        // and the two wide ones with their rhs column-major.
        assert!(blas::skinny_products() >= 11, "the tall and wide products did not reach the skinny kernel: {}", blas::skinny_products());
        // A decoding step's projection, 16 rows against a column-major weight, takes it.
        let before = blas::skinny_products();
        let w = Tensor::<2>::random([300, 640], Distribution::Normal(0.0, 1.0), &device).transpose();
        let _ = data(Tensor::<2>::random([16, 640], Distribution::Normal(0.0, 1.0), &device).matmul(w));
        assert_eq!(blas::skinny_products() - before, 1, "a projection against a column-major weight did not reach the skinny kernel");
    }
    for (r, b) in rust_logits.iter().zip(&blas_logits) {
        assert_close("openblas vs rust logits", b, r, 1e-4);
    }
    // The default routing: tiny products stay on gemm, larger ones go to OpenBLAS.
    blas::route_all_products(false);
    let on_openblas = |m: usize, k: usize, n: usize| {
        let before = blas::library_products();
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let _ = data(a.matmul(Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &device)));
        blas::library_products() - before
    };
    assert_eq!(on_openblas(3, 5, 7), 0, "a tiny product went to OpenBLAS");
    assert_eq!(on_openblas(64, 96, 80), 1, "a single-threaded product outside rayon stayed on gemm");
    assert_eq!(on_openblas(256, 320, 288), 1, "a multi-threaded product stayed on gemm");
    check_products(&device, "openblas-default");
    assert_eq!(blas::use_rust(), Kernel::Rust);
    assert_eq!(blas::current(), Kernel::Rust);
}

/// MKL's half: the same products and fixtures, its logits within the parity limit of the
/// pure-Rust kernel's.
fn check_mkl(device: &Device, rust_logits: &[Vec<f32>]) {
    let path = blas::mkl::cached_library();
    if !path.exists() {
        assert!(std::env::var_os("LANDERMT_REQUIRE_MKL").is_none(), "LANDERMT_REQUIRE_MKL is set but MKL is not in the cache ({})", path.display());
        eprintln!("SKIPPED the MKL half: MKL is not in the cache ({}; `cargo xtask fetch-blas --mkl`)", path.display());
        return;
    }
    let kernel = blas::use_library(blas::Vendor::Mkl, &path, false).unwrap();
    assert!(matches!(kernel, Kernel::Mkl { .. }), "{kernel:?}");
    assert_eq!(blas::current(), kernel);
    blas::route_all_products(true);
    let before = blas::library_products();
    check_products(device, "mkl");
    check_mixed_products(device, "mkl");
    let mkl_logits = check_fixtures(device, "mkl");
    assert!(blas::library_products() > before + 100, "the products did not reach MKL");
    for (r, m) in rust_logits.iter().zip(&mkl_logits) {
        assert_close("mkl vs rust logits", m, r, 1e-4);
    }
    blas::route_all_products(false);
    assert_eq!(blas::use_rust(), Kernel::Rust);
}
