//! Products of a tall row-major matrix with a few columns, `out[m, n] = A[m, k] · B[k, n]` for
//! n ≤ 16: a decoding step's tied head, `E · hᵀ`, with E the `[vocab, d]` embedding and h the
//! batch's hidden states. OpenBLAS's sgemm packs all of E for every step (110 ms for Gemma's
//! 262k × 640 head with 16 rows, two threads); this kernel reads each row of A once, where it
//! lies, against B packed into one `[k, 16]` panel, and keeps 6 rows × 16 columns of `out` in
//! AVX2 registers (48–52 ms; BENCHMARKS.md, "the decoding head without packing").
//!
//! A decoding step's projections `x · W` take the same kernel as `(Wᵀ · xᵀ)ᵀ` when W is stored
//! column-major (`crate::nn::decode_layout`): then each of W's output columns is a row read in
//! place, where sgemm packs all of W for every step (17 % of `translate` went to that packing).
//!
//! Every output is a plain sum over k in order, one FMA at a time, so the result does not depend
//! on the thread count.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Columns of the packed panel: two 8-float AVX2 vectors.
const PANEL: usize = 16;
/// Rows of A per register block: 6 × 2 accumulators, two panel vectors and one broadcast.
const ROWS: usize = 6;
/// Shorter matrices go to sgemm: splitting them across threads costs more than it saves.
const MIN_ROWS: usize = 1024;
/// The same for a transposed projection, whose alternative packs all of W.
const MIN_ROWS_TRANSPOSED: usize = 256;

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
    (2..=PANEL).contains(&n) && k > 0 && lhs_cs == 1 && lhs_rs >= k as isize && crate::vmath::has_avx2_fma()
}

/// `out = lhs · rhs` (`lhs` row-major with row stride `lhs_rs`, `rhs` with any strides, `out`
/// with row and column strides `out.1`, `out.2`), split over rayon's threads by blocks of rows.
///
/// # Safety
/// [`applies`] must hold; the pointers must be valid for the matrices their strides describe.
pub unsafe fn product(m: usize, n: usize, k: usize, lhs: *const f32, lhs_rs: isize, rhs: (*const f32, isize, isize), out: (*mut f32, isize, isize)) {
    let panel = pack(n, k, rhs);
    let threads = rayon::current_num_threads().max(1);
    // Several chunks per thread, so a thread slowed by other work does not hold up the rest.
    let chunk = m.div_ceil(threads * 4).next_multiple_of(ROWS);
    // Raw pointers are not Send; the chunks below write disjoint rows of `out`.
    let (lhs, out_ptr) = (lhs as usize, out.0 as usize);
    (0..m.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let (first, rows) = (c * chunk, chunk.min(m - c * chunk));
        let a = (lhs as *const f32).wrapping_offset(first as isize * lhs_rs);
        let o = (out_ptr as *mut f32).wrapping_offset(first as isize * out.1);
        // SAFETY: rows first..first+rows of both matrices, inside what the caller vouched for.
        unsafe { rows_block(rows, n, a, lhs_rs, &panel, (o, out.1, out.2)) };
    });
}

/// `rhs` (`k × n`, strides `rs`, `cs`) as k rows of two 8-float vectors, zero past column n.
/// Vectors, not floats: their alignment lets the kernel read them without `loadu`, which in
/// debug builds goes through a checked copy.
fn pack(n: usize, k: usize, (rhs, rs, cs): (*const f32, isize, isize)) -> Vec<[__m256; 2]> {
    (0..k)
        .map(|p| {
            let mut row = [0f32; PANEL];
            for (j, v) in row[..n].iter_mut().enumerate() {
                // SAFETY: (p, j) is inside the k × n operand (caller's contract).
                *v = unsafe { *rhs.offset(p as isize * rs + j as isize * cs) };
            }
            // SAFETY: [f32; 16] and [__m256; 2] have the same size, and every bit pattern is valid.
            unsafe { std::mem::transmute::<[f32; PANEL], [__m256; 2]>(row) }
        })
        .collect()
}

/// `rows` consecutive rows of the product, [`ROWS`] at a time.
///
/// # Safety
/// As [`product`], for these rows.
unsafe fn rows_block(rows: usize, n: usize, a: *const f32, lhs_rs: isize, panel: &[[__m256; 2]], (out, out_rs, out_cs): (*mut f32, isize, isize)) {
    let mut tile = [[0f32; PANEL]; ROWS];
    let mut r = 0;
    while r < rows {
        let take = ROWS.min(rows - r);
        // A short last block repeats its final row rather than reading past the matrix.
        let block: [*const f32; ROWS] = std::array::from_fn(|i| a.wrapping_offset((r + i.min(take - 1)) as isize * lhs_rs));
        // SAFETY: each is a row of A, as long as the panel (caller's contract); the CPU has
        // AVX2 and FMA (`applies` checked it).
        unsafe { microkernel(&block, panel, &mut tile) };
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

/// `tile[i][j] = Σ_p a[i][p] · panel[p][j]` for six rows `a[i]` of `panel.len()` floats.
///
/// Rows are read with `_mm_load_ss` at `wrapping_add` offsets: in debug builds (`cargo xtask`
/// runs one) references and `ptr::add` carry per-element checks, which doubled this loop's time.
///
/// # Safety
/// The rows must be valid for `panel.len()` reads; the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn microkernel(a: &[*const f32; ROWS], panel: &[[__m256; 2]], tile: &mut [[f32; PANEL]; ROWS]) {
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    for (p, [lo, hi]) in panel.iter().enumerate() {
        for (acc, row) in acc.iter_mut().zip(a) {
            // SAFETY: p < panel.len(), inside each row.
            let x = _mm256_broadcastss_ps(unsafe { _mm_load_ss(row.wrapping_add(p)) });
            acc[0] = _mm256_fmadd_ps(x, *lo, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, *hi, acc[1]);
        }
    }
    for (acc, out) in acc.iter().zip(tile.iter_mut()) {
        let (lo, hi) = out.split_at_mut(8);
        // SAFETY: each half holds 8 floats.
        unsafe {
            _mm256_storeu_ps(lo.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(hi.as_mut_ptr(), acc[1]);
        }
    }
}
