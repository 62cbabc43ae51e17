//! Products of a tall row-major matrix with a few columns, `out[m, n] = A[m, k] · B[k, n]` for
//! n ≤ 32: a decoding step's tied head, `E · hᵀ`, with E the `[vocab, d]` embedding and h the
//! batch's hidden states. OpenBLAS's sgemm packs all of E for every step (110 ms for Gemma's
//! 262k × 640 head with 16 rows, two threads); these kernels read each row of A once, where it
//! lies, against B packed into one panel of 16 columns, and keep 6 rows × 16 columns of `out`
//! in registers (48–52 ms in f32; BENCHMARKS.md, "the decoding head without packing").
//! With AVX-512, 17 to 32 columns (the eval stage decodes 32 rows at a time) take a panel of 32
//! columns, two vectors, so A is still read once; on AVX2, whose 16 registers hold one 16-column
//! block, they take two panels, each reading A. Either beats sgemm, which packs all of A.
//!
//! A decoding step's projections `x · W` take the same kernels as `(Wᵀ · xᵀ)ᵀ` when W is stored
//! column-major (`crate::nn::decode_layout`): then each of W's output columns is a row read in
//! place, where sgemm packs all of W for every step (17 % of `translate` went to that packing).
//!
//! A is f32 ([`F32Fma`]) or bf16 (a `dtype = "bf16"` model's weights, half the bytes per step:
//! [`Bf16Fma`], [`Bf16Gemv`] for one column), widened to f32 in registers, so every output is
//! the f32 sum of the exact bf16 values. Where the CPU has AVX-512F, products of more than one
//! column run on 16-float vectors ([`F32Fma512`], [`Bf16Fma512`]); `LANDERMT_AVX512=0` keeps
//! them on AVX2. (AVX512-BF16's `vdpbf16ps`, with B split into two bf16 parts to keep it near
//! f32, was tried and ran 1.3× slower than widening here: BENCHMARKS.md, "bf16 decoding
//! kernels and AVX-512".)
//!
//! Each output is a sum over k in a fixed order, so the result does not depend on the thread
//! count.

use std::arch::x86_64::*;

use burn_flex::ops::matmul::Bf16TallArgs;
use half::bf16;
use rayon::prelude::*;

/// Columns of the packed panel: two 8-float AVX2 vectors, or one 16-float AVX-512 vector.
const PANEL: usize = 16;
/// The most columns a product takes: two AVX-512 panels side by side.
const MAX_N: usize = 2 * PANEL;
/// Rows of A per register block: 6 × 2 accumulators, two panel vectors and one broadcast.
const ROWS: usize = 6;
/// Shorter matrices go to sgemm: splitting them across threads costs more than it saves.
const MIN_ROWS: usize = 1024;
/// The same for a transposed projection, whose alternative packs all of W.
const MIN_ROWS_TRANSPOSED: usize = 256;

/// f32 elements in a 64-byte cache line: the loops ask for the next block once per line.
const F32_PER_LINE: usize = 16;

/// Asks for the line holding element `p` of each row `ahead` elements on (the same row of the
/// next register block), so that it is in cache when that block starts. The six rows are read
/// four bytes at a time each, and the hardware prefetcher does not keep up with that: on a
/// two-core Xeon the 262k-row head at 16 columns took 57 ms without this and 29 ms with it,
/// 23 GB/s of the machine's 29 (BENCHMARKS.md, 2026-12-07).
/// Only a `p` at the start of an f32 line asks (a multiple of [`F32_PER_LINE`]).
#[inline(always)]
fn prefetch_ahead<E>(a: &[*const E; ROWS], ahead: isize, p: usize) {
    if !p.is_multiple_of(F32_PER_LINE) {
        return;
    }
    for &row in a {
        // A prefetch is a hint: it reads nothing into the program and never faults, even past
        // the end of the matrix (the last block asks for rows that do not exist).
        // SAFETY: SSE is part of x86-64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_offset(ahead).wrapping_add(p).cast()) };
    }
}

/// The sums of one register block: [`ROWS`] rows × up to [`MAX_N`] columns.
type Tile = [[f32; MAX_N]; ROWS];

/// One way of computing a register block: how B is packed, and the inner loop over k.
trait Kernel: Sync {
    /// Columns of B per panel: a product with more is done one panel of columns at a time.
    const COLS: usize = PANEL;
    /// An element of A.
    type Elem;
    /// B packed for the inner loop (aligned vectors, so that it is read without `loadu`,
    /// which in debug builds goes through a checked copy).
    type Panel: Send + Sync;
    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel;
    /// `tile[i][j] = Σ_p a[i][p] · B[p][j]` over the k columns of six rows `a[i]`, asking for
    /// the rows `ahead` elements on (the next block's) as it goes (see [`prefetch_ahead`]).
    ///
    /// # Safety
    /// Each row must be valid for k reads; the CPU must have the kernel's features.
    unsafe fn tile(&self, a: &[*const Self::Elem; ROWS], k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile);
}

/// Whether [`product`] takes a product of this shape and layout on this CPU.
/// One column stays with `cblas_sgemv`, which reads A once without the panel's 15 idle lanes.
pub fn applies(m: usize, n: usize, k: usize, lhs_cs: isize, lhs_rs: isize) -> bool {
    m >= MIN_ROWS && shape_fits(n, k, lhs_cs, lhs_rs)
}

/// Whether [`product`] takes `(Wᵀ · xᵀ)ᵀ` for `x · W` with `x` of `rows` rows and W (`k × n`,
/// strides `w_rs`, `w_cs`) stored column-major.
pub fn applies_transposed(rows: usize, n: usize, k: usize, w_rs: isize, w_cs: isize) -> bool {
    n >= MIN_ROWS_TRANSPOSED && shape_fits(rows, k, w_rs, w_cs)
}

fn shape_fits(n: usize, k: usize, lhs_cs: isize, lhs_rs: isize) -> bool {
    (2..=MAX_N).contains(&n) && k > 0 && lhs_cs == 1 && lhs_rs >= k as isize && crate::vmath::has_avx2_fma()
}

/// Whether [`product_bf16`] takes a product with a bf16 A of m rows (either orientation: the
/// head, or a column-major weight's `(Wᵀ · xᵀ)ᵀ`). Unlike f32, there is no sgemm to leave
/// short products to, so any height goes.
pub fn applies_bf16(n: usize, k: usize, lhs_cs: isize, lhs_rs: isize) -> bool {
    (n == 1 && k > 0 && lhs_cs == 1 && lhs_rs >= k as isize && crate::vmath::has_avx2_fma()) || shape_fits(n, k, lhs_cs, lhs_rs)
}

/// Which instruction set a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 and FMA: 8-float vectors.
    Avx2,
    /// AVX-512F: 16-float vectors.
    Avx512,
}

impl Isa {
    /// The widest this CPU has, unless `LANDERMT_AVX512=0` keeps products on AVX2 (to compare
    /// the two on one machine). Detected once.
    pub fn chosen() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let allowed = std::env::var("LANDERMT_AVX512").map_or(true, |v| v != "0");
            if allowed && is_x86_feature_detected!("avx512f") { Isa::Avx512 } else { Isa::Avx2 }
        })
    }

    /// Whether this CPU runs products on `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Avx2 => crate::vmath::has_avx2_fma(),
            Isa::Avx512 => crate::vmath::has_avx2_fma() && is_x86_feature_detected!("avx512f"),
        }
    }
}

/// Registers [`product_bf16`] with flex for its tall bf16 × few-column products (the decoding
/// head and column-major projections of a `dtype = "bf16"` model), whatever the f32 GEMM.
pub fn register_bf16() {
    burn_flex::ops::matmul::set_bf16_tall(Some(bf16_tall_hook));
}

/// flex's hook for [`Bf16TallArgs`] products: declines the shapes [`applies_bf16`] does not take.
unsafe fn bf16_tall_hook(a: &Bf16TallArgs) -> bool {
    if !applies_bf16(a.n, a.k, 1, a.a_rs) || a.m == 0 {
        return false;
    }
    // SAFETY: flex's hook contract (valid matrices), and `applies_bf16` holds.
    unsafe { product_bf16(a.m, a.n, a.k, a.a.cast(), a.a_rs, (a.b, a.b_rs, a.b_cs), (a.out, a.out_rs, a.out_cs)) };
    BF16_PRODUCTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    true
}

/// How many products [`product_bf16`] has computed through flex's hook in this process.
pub fn bf16_products() -> u64 {
    BF16_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed)
}

static BF16_PRODUCTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `out = lhs · rhs` for f32 operands (`lhs` row-major with row stride `lhs_rs`, `rhs` with any
/// strides, `out` with row and column strides `out.1`, `out.2`), on [`Isa::chosen`].
///
/// # Safety
/// [`applies`] must hold; the pointers must be valid for the matrices their strides describe.
pub unsafe fn product(m: usize, n: usize, k: usize, lhs: *const f32, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    // SAFETY: the caller's contract; `chosen` is available.
    unsafe { product_with(Isa::chosen(), m, n, k, lhs, lhs_rs, rhs, out) }
}

/// [`product`] on the instruction set given, for tests and benchmarks that compare them.
///
/// # Safety
/// As [`product`]; `isa` must be available (asserted).
#[allow(clippy::too_many_arguments)]
pub unsafe fn product_with(isa: Isa, m: usize, n: usize, k: usize, lhs: *const f32, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    assert!(isa.available(), "this CPU has no {isa:?}");
    // SAFETY: the caller's contract and the assertion above.
    unsafe {
        match isa {
            Isa::Avx2 => run(&F32Fma, m, n, k, lhs, lhs_rs, rhs, out),
            Isa::Avx512 if n > PANEL => run(&F32Fma512x2, m, n, k, lhs, lhs_rs, rhs, out),
            Isa::Avx512 => run(&F32Fma512, m, n, k, lhs, lhs_rs, rhs, out),
        }
    }
}

/// `out = lhs · rhs` with `lhs` bf16 on [`Isa::chosen`]: one column on [`Bf16Gemv`], more on
/// [`Bf16Fma512`] or [`Bf16Fma`].
///
/// # Safety
/// [`applies_bf16`] must hold; the pointers must be valid for the matrices their strides describe.
pub unsafe fn product_bf16(m: usize, n: usize, k: usize, lhs: *const bf16, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    // SAFETY: the caller's contract; `chosen` is available.
    unsafe { product_bf16_with(Isa::chosen(), m, n, k, lhs, lhs_rs, rhs, out) }
}

/// [`product_bf16`] on the instruction set given, for tests and benchmarks that compare them.
///
/// # Safety
/// As [`product_bf16`]; `isa` must be available (asserted).
#[allow(clippy::too_many_arguments)]
pub unsafe fn product_bf16_with(isa: Isa, m: usize, n: usize, k: usize, lhs: *const bf16, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    assert!(isa.available(), "this CPU has no {isa:?}");
    // SAFETY: the caller's contract and the assertion above.
    unsafe {
        match (n, isa) {
            (1, _) => run(&Bf16Gemv, m, n, k, lhs, lhs_rs, rhs, out),
            (_, Isa::Avx2) => run(&Bf16Fma, m, n, k, lhs, lhs_rs, rhs, out),
            (_, Isa::Avx512) if n > PANEL => run(&Bf16Fma512x2, m, n, k, lhs, lhs_rs, rhs, out),
            (_, Isa::Avx512) => run(&Bf16Fma512, m, n, k, lhs, lhs_rs, rhs, out),
        }
    }
}

/// The product on `kernel`, [`Kernel::COLS`] columns of B at a time.
///
/// # Safety
/// As [`product`], for the kernel's element type.
#[allow(clippy::too_many_arguments)]
unsafe fn run<K: Kernel>(kernel: &K, m: usize, n: usize, k: usize, lhs: *const K::Elem, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    for first in (0..n).step_by(K::COLS) {
        let cols = K::COLS.min(n - first);
        let rhs = (rhs.0.wrapping_offset(first as isize * rhs.2), rhs.1, rhs.2);
        let out = (out.0.wrapping_offset(first as isize * out.2), out.1, out.2);
        // SAFETY: columns first..first + cols of B and out, inside what the caller vouched for.
        unsafe { run_panel(kernel, m, cols, k, lhs, lhs_rs, rhs, out) };
    }
}

/// [`run`] for at most [`Kernel::COLS`] columns, split over rayon's threads by blocks of rows.
///
/// # Safety
/// As [`product`], for the kernel's element type, with n ≤ `K::COLS`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_panel<K: Kernel>(kernel: &K, m: usize, n: usize, k: usize, lhs: *const K::Elem, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    let panel = kernel.pack(n, k, rhs);
    let threads = rayon::current_num_threads().max(1);
    // Several chunks per thread, so a thread slowed by other work does not hold up the rest.
    let chunk = m.div_ceil(threads * 4).next_multiple_of(ROWS);
    // Raw pointers are not Send; the chunks below write disjoint rows of `out`.
    let (lhs, out_ptr) = (lhs as usize, out.0 as usize);
    (0..m.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let (first, rows) = (c * chunk, chunk.min(m - c * chunk));
        let a = (lhs as *const K::Elem).wrapping_offset(first as isize * lhs_rs);
        let o = (out_ptr as *mut f32).wrapping_offset(first as isize * out.1);
        // SAFETY: rows first..first+rows of both matrices, inside what the caller vouched for.
        unsafe { rows_block(kernel, rows, n, k, a, lhs_rs, &panel, (o, out.1, out.2)) };
    });
}

/// `rows` consecutive rows of the product, [`ROWS`] at a time.
///
/// # Safety
/// As [`product`], for these rows.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_block<K: Kernel>(kernel: &K, rows: usize, n: usize, k: usize, a: *const K::Elem, lhs_rs: isize, panel: &K::Panel, (out, out_rs, out_cs): (*mut f32, isize, isize)) {
    let mut tile = [[0f32; MAX_N]; ROWS];
    let mut r = 0;
    while r < rows {
        let take = ROWS.min(rows - r);
        // A short last block repeats its final row rather than reading past the matrix.
        let block: [*const K::Elem; ROWS] = std::array::from_fn(|i| a.wrapping_offset((r + i.min(take - 1)) as isize * lhs_rs));
        // SAFETY: each is a row of A of k elements (caller's contract); the CPU has the
        // kernel's features (`applies*` and `bf16_dot` checked them).
        unsafe { kernel.tile(&block, k, ROWS as isize * lhs_rs, panel, &mut tile) };
        for (i, row) in tile[..take].iter().enumerate() {
            let dst = out.wrapping_offset((r + i) as isize * out_rs);
            if out_cs == 1 {
                // SAFETY: row r + i of out has n floats.
                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst, n) };
            } else {
                for (j, v) in row[..n].iter().enumerate() {
                    // SAFETY: (r + i, j) is inside out (caller's contract).
                    unsafe { *dst.wrapping_offset(j as isize * out_cs) = *v };
                }
            }
        }
        r += take;
    }
}

/// B (`k × n`, strides `rs`, `cs`) as k rows of `W` floats, zero past column n (n ≤ W).
fn panel_rows<const W: usize>(n: usize, k: usize, (rhs, rs, cs): (*const f32, isize, isize)) -> impl Iterator<Item = [f32; W]> {
    (0..k).map(move |p| {
        let mut row = [0f32; W];
        for (j, v) in row[..n].iter_mut().enumerate() {
            // SAFETY: (p, j) is inside the k × n operand (caller's contract).
            *v = unsafe { *rhs.offset(p as isize * rs + j as isize * cs) };
        }
        row
    })
}

/// B as k rows of two 8-float AVX2 vectors.
fn pack_f32(n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Vec<[__m256; 2]> {
    // SAFETY: [f32; 16] and [__m256; 2] have the same size, and every bit pattern is valid.
    panel_rows(n, k, rhs).map(|row| unsafe { std::mem::transmute::<[f32; PANEL], [__m256; 2]>(row) }).collect()
}

/// f32 A, one FMA per product (AVX2).
struct F32Fma;

impl Kernel for F32Fma {
    type Elem = f32;
    type Panel = Vec<[__m256; 2]>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        pack_f32(n, k, rhs)
    }

    /// Rows are read with `_mm_load_ss` at `wrapping_add` offsets: in debug builds (`cargo
    /// xtask` runs one) references and `ptr::add` carry per-element checks, which doubled this
    /// loop's time.
    unsafe fn tile(&self, a: &[*const f32; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract.
        unsafe { fma_tile(a, ahead, panel, tile, |row, p| _mm256_broadcastss_ps(_mm_load_ss(row.wrapping_add(p)))) }
    }
}

/// bf16 A widened in a register (a 16-bit load shifted into the top of a float), then one FMA
/// per product as in [`F32Fma`]: every output is the f32 sum of the exact bf16 values (AVX2).
struct Bf16Fma;

impl Kernel for Bf16Fma {
    type Elem = bf16;
    type Panel = Vec<[__m256; 2]>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        pack_f32(n, k, rhs)
    }

    unsafe fn tile(&self, a: &[*const bf16; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract.
        unsafe { bf16_fma_tile(a, ahead, panel, tile) }
    }
}

/// Elements of A widened per step of the bf16 kernels: each row's next 16 (a 32-byte read),
/// into a block of L1 that the products then broadcast from. Reading them one at a time
/// costs a debug build (`cargo xtask`'s profile) an alignment check per element, which made
/// these loops 1.5–2.5× slower there than in release.
const CHUNK: usize = 16;

/// Row `row`'s elements `from..from + len` (len ≤ CHUNK) widened into `wide`, zero after len.
///
/// # Safety
/// The elements must lie inside the row.
#[inline(always)]
unsafe fn widen_chunk(row: *const bf16, from: usize, len: usize, wide: &mut [f32; CHUNK]) {
    if len == CHUNK {
        // SAFETY: CHUNK elements inside the row (caller's contract).
        let bits: [u16; CHUNK] = unsafe { *row.wrapping_add(from).cast::<[u16; CHUNK]>() };
        for (d, &x) in wide.iter_mut().zip(&bits) {
            *d = f32::from_bits(u32::from(x) << 16);
        }
    } else {
        for (i, d) in wide.iter_mut().enumerate() {
            // SAFETY: i < len elements inside the row.
            *d = if i < len { unsafe { *row.wrapping_add(from + i) }.to_f32() } else { 0.0 };
        }
    }
}

/// The inner loop of [`Bf16Fma`].
///
/// # Safety
/// Each row must be valid for `panel.len()` elements; the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn bf16_fma_tile(a: &[*const bf16; ROWS], ahead: isize, panel: &[[__m256; 2]], tile: &mut Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    // SAFETY: the caller's contract.
    unsafe {
        for_widened(a, ahead, panel, |[lo, hi], wide| {
            for (acc, x) in acc.iter_mut().zip(wide) {
                let x = _mm256_broadcastss_ps(_mm_load_ss(x));
                acc[0] = _mm256_fmadd_ps(x, *lo, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, *hi, acc[1]);
            }
        })
    };
    store_tile(&acc, tile);
}

/// The loop of the bf16 panel kernels: for each step p of the panel, `step(&panel[p], a_p)`
/// with `a_p[i]` row i's element p, widened to f32 (CHUNK steps at a time by `widen_chunk`).
///
/// # Safety
/// Each row must be valid for `panel.len()` elements.
#[inline(always)]
unsafe fn for_widened<P>(a: &[*const bf16; ROWS], ahead: isize, panel: &[P], mut step: impl FnMut(&P, [&f32; ROWS])) {
    let mut wide = [[0f32; CHUNK]; ROWS];
    for (c, steps) in panel.chunks(CHUNK).enumerate() {
        // CHUNK bf16 are half a line: every chunk starts on a multiple of 16, so each line is
        // asked for twice, which costs less than tracking lines.
        prefetch_ahead(a, ahead, c * CHUNK);
        for (w, &row) in wide.iter_mut().zip(a) {
            // SAFETY: elements c·CHUNK.. of the row, steps.len() of them.
            unsafe { widen_chunk(row, c * CHUNK, steps.len(), w) };
        }
        for (j, b) in steps.iter().enumerate() {
            // `% CHUNK` lets the compiler drop the bounds check (j < CHUNK).
            step(b, std::array::from_fn(|i| &wide[i][j % CHUNK]));
        }
    }
}

/// bf16 A widened as in [`Bf16Fma`], one FMA per product on 16-float vectors (AVX-512F).
struct Bf16Fma512;

impl Kernel for Bf16Fma512 {
    type Elem = bf16;
    type Panel = Vec<__m512>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        F32Fma512.pack(n, k, rhs)
    }

    unsafe fn tile(&self, a: &[*const bf16; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract (rows of panel.len() elements, AVX-512F).
        unsafe { bf16_fma512_tile(a, ahead, panel, tile) }
    }
}

/// The inner loop of [`Bf16Fma512`].
///
/// # Safety
/// Each row must be valid for `panel.len()` elements; the CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn bf16_fma512_tile(a: &[*const bf16; ROWS], ahead: isize, panel: &[__m512], tile: &mut Tile) {
    let mut acc = [_mm512_setzero_ps(); ROWS];
    // SAFETY: the caller's contract.
    unsafe {
        for_widened(a, ahead, panel, |b, wide| {
            for (acc, x) in acc.iter_mut().zip(wide) {
                *acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(_mm_load_ss(x)), *b, *acc);
            }
        })
    };
    store_tile512(&acc, tile);
}

/// [`Bf16Fma512`] on 17 to 32 columns, reading A once, as [`F32Fma512x2`].
struct Bf16Fma512x2;

impl Kernel for Bf16Fma512x2 {
    const COLS: usize = MAX_N;
    type Elem = bf16;
    type Panel = Vec<[__m512; 2]>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        pack512x2(n, k, rhs)
    }

    unsafe fn tile(&self, a: &[*const bf16; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract (rows of panel.len() elements, AVX-512F).
        unsafe { bf16_fma512x2_tile(a, ahead, panel, tile) }
    }
}

/// The inner loop of [`Bf16Fma512x2`].
///
/// # Safety
/// Each row must be valid for `panel.len()` elements; the CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn bf16_fma512x2_tile(a: &[*const bf16; ROWS], ahead: isize, panel: &[[__m512; 2]], tile: &mut Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    // SAFETY: the caller's contract.
    unsafe {
        for_widened(a, ahead, panel, |[lo, hi], wide| {
            for (acc, x) in acc.iter_mut().zip(wide) {
                let x = _mm512_broadcastss_ps(_mm_load_ss(x));
                acc[0] = _mm512_fmadd_ps(x, *lo, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, *hi, acc[1]);
            }
        })
    };
    store_tile512x2(&acc, tile);
}

/// Two 16-float accumulators per row into the tile.
#[target_feature(enable = "avx512f")]
fn store_tile512x2(acc: &[[__m512; 2]; ROWS], tile: &mut Tile) {
    for (acc, out) in acc.iter().zip(tile.iter_mut()) {
        let (lo, hi) = out.split_at_mut(PANEL);
        // SAFETY: each half holds 16 floats.
        unsafe {
            _mm512_storeu_ps(lo.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(hi.as_mut_ptr(), acc[1]);
        }
    }
}

/// One 16-float accumulator per row into the tile.
#[target_feature(enable = "avx512f")]
fn store_tile512(acc: &[__m512; ROWS], tile: &mut Tile) {
    for (acc, out) in acc.iter().zip(tile.iter_mut()) {
        // SAFETY: a row of the tile holds 16 floats.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), *acc) };
    }
}

/// Two 8-float accumulators per row into the tile.
#[target_feature(enable = "avx2")]
fn store_tile(acc: &[[__m256; 2]; ROWS], tile: &mut Tile) {
    for (acc, out) in acc.iter().zip(tile.iter_mut()) {
        let (lo, hi) = out.split_at_mut(8);
        // SAFETY: each half holds 8 floats.
        unsafe {
            _mm256_storeu_ps(lo.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(hi.as_mut_ptr(), acc[1]);
        }
    }
}

/// The AVX2 inner loop of [`F32Fma`]: `load(row, p)` broadcasts A's element p.
///
/// # Safety
/// Each row must be valid for `panel.len()` elements; the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn fma_tile<E>(a: &[*const E; ROWS], ahead: isize, panel: &[[__m256; 2]], tile: &mut Tile, load: impl Fn(*const E, usize) -> __m256) {
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    for (p, [lo, hi]) in panel.iter().enumerate() {
        prefetch_ahead(a, ahead, p);
        for (acc, &row) in acc.iter_mut().zip(a) {
            let x = load(row, p);
            acc[0] = _mm256_fmadd_ps(x, *lo, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, *hi, acc[1]);
        }
    }
    store_tile(&acc, tile);
}

/// f32 A, one FMA per product on 16-float vectors (AVX-512F): half the instructions of
/// [`F32Fma`] for the same sums, in the same order.
struct F32Fma512;

impl Kernel for F32Fma512 {
    type Elem = f32;
    type Panel = Vec<__m512>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        // SAFETY: [f32; 16] and __m512 have the same size, and every bit pattern is valid.
        panel_rows(n, k, rhs).map(|row| unsafe { std::mem::transmute::<[f32; PANEL], __m512>(row) }).collect()
    }

    unsafe fn tile(&self, a: &[*const f32; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract (rows of panel.len() floats, AVX-512F).
        unsafe { fma512_tile(a, ahead, panel, tile) }
    }
}

/// The inner loop of [`F32Fma512`].
///
/// # Safety
/// Each row must be valid for `panel.len()` floats; the CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn fma512_tile(a: &[*const f32; ROWS], ahead: isize, panel: &[__m512], tile: &mut Tile) {
    let mut acc = [_mm512_setzero_ps(); ROWS];
    for (p, b) in panel.iter().enumerate() {
        prefetch_ahead(a, ahead, p);
        for (acc, &row) in acc.iter_mut().zip(a) {
            // SAFETY: p < panel.len(), inside the row.
            let x = _mm512_broadcastss_ps(unsafe { _mm_load_ss(row.wrapping_add(p)) });
            *acc = _mm512_fmadd_ps(x, *b, *acc);
        }
    }
    store_tile512(&acc, tile);
}

/// B as k rows of 32 floats in two 16-float vectors, zero past column n.
fn pack512x2(n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Vec<[__m512; 2]> {
    // SAFETY: [f32; 32] and [__m512; 2] have the same size, and every bit pattern is valid.
    panel_rows(n, k, rhs).map(|row| unsafe { std::mem::transmute::<[f32; MAX_N], [__m512; 2]>(row) }).collect()
}

/// [`F32Fma512`] on 17 to 32 columns: two accumulators per row, so that A is read once for
/// all of them. Each output is the same sum, in the same order, as a 16-column panel's.
struct F32Fma512x2;

impl Kernel for F32Fma512x2 {
    const COLS: usize = MAX_N;
    type Elem = f32;
    type Panel = Vec<[__m512; 2]>;

    fn pack(&self, n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        pack512x2(n, k, rhs)
    }

    unsafe fn tile(&self, a: &[*const f32; ROWS], _k: usize, ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        // SAFETY: the caller's contract (rows of panel.len() floats, AVX-512F).
        unsafe { fma512x2_tile(a, ahead, panel, tile) }
    }
}

/// The inner loop of [`F32Fma512x2`]: 12 accumulators, two panel vectors and a broadcast.
///
/// # Safety
/// Each row must be valid for `panel.len()` floats; the CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn fma512x2_tile(a: &[*const f32; ROWS], ahead: isize, panel: &[[__m512; 2]], tile: &mut Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    for (p, [lo, hi]) in panel.iter().enumerate() {
        prefetch_ahead(a, ahead, p);
        for (acc, &row) in acc.iter_mut().zip(a) {
            // SAFETY: p < panel.len(), inside the row.
            let x = _mm512_broadcastss_ps(unsafe { _mm_load_ss(row.wrapping_add(p)) });
            acc[0] = _mm512_fmadd_ps(x, *lo, acc[0]);
            acc[1] = _mm512_fmadd_ps(x, *hi, acc[1]);
        }
    }
    store_tile512x2(&acc, tile);
}

/// bf16 A times one column b (a single stream's decoding step): each row in turn, widened
/// eight elements at a time into four interleaved partial sums against b, added in a fixed
/// order at the end (AVX2). Consecutive rows are one sequential read of A: six rows read side
/// by side (as the panel kernels do) ran at half the bandwidth.
struct Bf16Gemv;

impl Kernel for Bf16Gemv {
    type Elem = bf16;
    /// b in 8-float vectors, zero past k.
    type Panel = Vec<__m256>;

    fn pack(&self, _n: usize, k: usize, rhs: (*const f32, isize, isize)) -> Self::Panel {
        let b: Vec<f32> = panel_rows::<1>(1, k, rhs).map(|row| row[0]).collect();
        b.chunks(8)
            .map(|c| {
                let mut v = [0f32; 8];
                v[..c.len()].copy_from_slice(c);
                // SAFETY: [f32; 8] and __m256 have the same size; every bit pattern is valid.
                unsafe { std::mem::transmute::<[f32; 8], __m256>(v) }
            })
            .collect()
    }

    unsafe fn tile(&self, a: &[*const bf16; ROWS], k: usize, _ahead: isize, panel: &Self::Panel, tile: &mut Tile) {
        for (&row, out) in a.iter().zip(tile.iter_mut()) {
            // SAFETY: the caller's contract (rows of k elements, AVX2 and FMA).
            out[0] = unsafe { bf16_dot(row, k, panel) };
        }
    }
}

/// `Σ_p row[p]·b[p]` for one bf16 row, with four interleaved 8-float partial sums.
///
/// # Safety
/// `row` must be valid for k elements, `b` holds k floats; the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn bf16_dot(row: *const bf16, k: usize, b: &[__m256]) -> f32 {
    let load = |c: usize| -> __m256 {
        // SAFETY: elements 8c..8c + 8 of the row; a plain read (see `Bf16Fma`); [u16; 8] and
        // __m128i have the same size.
        let bits = unsafe { std::mem::transmute::<[u16; 8], __m128i>(*row.wrapping_add(8 * c).cast::<[u16; 8]>()) };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(bits)))
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let whole = k / 8;
    let quads = whole / 4;
    for q in 0..quads {
        for (j, acc) in acc.iter_mut().enumerate() {
            *acc = _mm256_fmadd_ps(load(4 * q + j), b[4 * q + j], *acc);
        }
    }
    for c in 4 * quads..whole {
        acc[0] = _mm256_fmadd_ps(load(c), b[c], acc[0]);
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // SAFETY: [f32; 8] and __m256 have the same size.
    let lanes = unsafe { std::mem::transmute::<__m256, [f32; 8]>(sum) };
    // SAFETY: as above.
    let tail_b: [f32; 8] = b.get(whole).map_or([0.0; 8], |v| unsafe { std::mem::transmute::<__m256, [f32; 8]>(*v) });
    // SAFETY: p < k, inside the row.
    let tail: f32 = (8 * whole..k).map(|p| unsafe { *row.wrapping_add(p) }.to_f32() * tail_b[p - 8 * whole]).sum();
    lanes.iter().sum::<f32>() + tail
}
