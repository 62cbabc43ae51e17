//! Criterion benchmarks of the CPU kernels inside the workloads of `cargo xtask bench`, on
//! Gemma 3 270M's shapes (hidden 640, 4 heads of 256, FFN 2048, vocabulary 262,144), so that a
//! change to one kernel is measured alone: `cargo bench -p landermt-bench` (BENCHMARKS.md,
//! "Kernel benchmarks"). The whole workloads, against PyTorch, stay in `cargo xtask bench`.

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use landermt_model::config::Activation;
use landermt_model::nn::{fused_act, fused_norm, fused_softmax, rope};

const HIDDEN: usize = 640;
const HEADS: usize = 4;
const HEAD_DIM: usize = 256;
const FFN: usize = 2048;
/// A prefill batch: 4 sequences of 128 tokens.
const ROWS: [usize; 2] = [4, 128];

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Waits for the result, so the timing holds the work and not only its scheduling.
fn done<const D: usize>(t: Tensor<D>) {
    std::hint::black_box(t.into_data());
}

/// f32 GEMM on each kernel this machine has: a prefill projection (512 × 640 · 640 × 2048) and
/// the decoding head's shape (16 hidden states against 32,768 rows of the embedding; the real
/// head has 262,144), which OpenBLAS's hook hands to the skinny kernel.
fn gemm(c: &mut Criterion) {
    let device = Device::flex();
    let mut kernels = vec![("rust", None)];
    let openblas = landermt_model::blas::cached_library();
    if openblas.exists() {
        kernels.push(("openblas", Some(openblas)));
    } else {
        eprintln!("OpenBLAS not in the cache (`cargo xtask fetch-blas`): the pure-Rust GEMM only");
    }
    let mut group = c.benchmark_group("gemm");
    for (name, library) in kernels {
        match &library {
            Some(path) => drop(landermt_model::blas::use_openblas(path, false).expect("OpenBLAS loads")),
            None => drop(landermt_model::blas::use_rust()),
        }
        for (shape, (m, k, n)) in [("prefill-proj", (512, HIDDEN, FFN)), ("decode-head", (32_768, HIDDEN, 16))] {
            let (a, b) = (random([m, k], &device), random([k, n], &device));
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            group.bench_function(BenchmarkId::new(name, shape), |bench| bench.iter(|| done(a.clone().matmul(b.clone()))));
        }
    }
    drop(landermt_model::blas::use_rust());
    group.finish();
}

/// The decoding head's kernels alone, on Gemma's whole head (262,144 × 640) against 1, 8, 16
/// and 32 hidden states (32: the eval stage's batch, one 32-column panel on AVX-512), on AVX2 and (where the CPU has it) AVX-512F: f32 (`skinny::product`; one
/// column is sgemv's, not timed here) and bf16 weights (`skinny::product_bf16`; one column is
/// the same kernel on either).
fn head(c: &mut Criterion) {
    use landermt_model::skinny;
    const VOCAB: usize = 262_144;
    let mut group = c.benchmark_group("head");
    group.sample_size(10);
    let e: Vec<f32> = (0..VOCAB * HIDDEN).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 1000.0).collect();
    let e16: Vec<half::bf16> = e.iter().map(|&x| half::bf16::from_f32(x)).collect();
    for n in [1, 8, 16, 32] {
        let h: Vec<f32> = (0..HIDDEN * n).map(|i| ((i * 31 % 97) as f32 - 48.0) / 97.0).collect();
        let mut out = vec![0f32; VOCAB * n];
        let (b, o) = ((h.as_ptr(), n as isize, 1), (out.as_mut_ptr(), n as isize, 1));
        group.throughput(Throughput::Bytes((VOCAB * HIDDEN * 2) as u64));
        let isas: Vec<skinny::Isa> = [skinny::Isa::Avx2, skinny::Isa::Avx512].into_iter().filter(|isa| isa.available()).collect();
        for &isa in &isas {
            if n > 1 {
                // SAFETY: the three buffers hold the matrices their strides describe.
                group.bench_function(BenchmarkId::new(format!("f32-{isa:?}"), n), |bench| bench.iter(|| unsafe { skinny::product_with(isa, VOCAB, n, HIDDEN, e.as_ptr(), HIDDEN as isize, b, o) }));
            }
            if isa == skinny::Isa::Avx2 || n > 1 {
                // SAFETY: as above.
                group.bench_function(BenchmarkId::new(format!("bf16-{isa:?}"), n), |bench| {
                    bench.iter(|| unsafe { skinny::product_bf16_with(isa, VOCAB, n, HIDDEN, e16.as_ptr(), HIDDEN as isize, b, o) })
                });
            }
        }
    }
    group.finish();
}

/// The fused inference ops, each one pass over its input: RMSNorm, RoPE, the attention
/// softmax with its mask, and the gated activation of the FFN.
fn fused(c: &mut Criterion) {
    let device = Device::flex();
    let [b, t] = ROWS;
    let mut group = c.benchmark_group("fused");
    let x = random([b, t, HIDDEN], &device);
    let weight = vec![1.0f32; HIDDEN];
    group.bench_function("rms-norm", |bench| bench.iter(|| done(fused_norm::rms(x.clone(), &weight, 1e-6))));

    let positions: Vec<Vec<i64>> = (0..b).map(|_| (0..t as i64).collect()).collect();
    let tables = rope::tables(10_000.0, HEAD_DIM, &positions, &device);
    let q = random([b, HEADS, t, HEAD_DIM], &device);
    group.bench_function("rope", |bench| bench.iter(|| done(rope::apply(q.clone(), &tables))));

    let scores = random([b, HEADS, t, t], &device);
    let mask = Tensor::<4>::zeros([b, 1, t, t], &device);
    group.bench_function("softmax", |bench| bench.iter(|| done(fused_softmax::softmax(scores.clone(), 0.0625, &mask))));

    let (gate, up) = (random([b, t, FFN], &device), random([b, t, FFN], &device));
    group.bench_function("geglu-tanh", |bench| bench.iter(|| done(fused_act::gated(Activation::GeGluTanh, gate.clone(), Some(up.clone())))));
    group.finish();
}

/// Stage 2's Taylor accumulation (forward, backward through the probe leaves, `|∂L/∂h · h|`
/// summed per unit) on the tiny LLaMA fixture, 8 sentences.
fn taylor(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let model = landermt_model::LanguageModel::load(format!("{root}/tests/fixtures/hf-tiny/llama-tiny"), &Device::flex().autodiff()).expect("the tiny fixture loads");
    let model = landermt_score::frozen(model);
    let ids: Vec<Vec<u32>> = (0..8).map(|i| model.encode(&format!("Sentence number {i} is about cats and the weather.")).unwrap()).collect();
    c.bench_function("taylor/tiny-llama-8", |bench| bench.iter(|| std::hint::black_box(landermt_score::awareness(&model, &ids, 4, &|_| {}))));
}

criterion_group! {
    name = kernels;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = gemm, head, fused, taylor
}
criterion_main!(kernels);
