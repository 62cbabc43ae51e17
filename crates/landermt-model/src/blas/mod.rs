//! The f32 GEMM kernel: a BLAS library loaded at run time (OpenBLAS or MKL, from PyPI) where it
//! can be had, Burn flex's pure-Rust `gemm` otherwise.
//!
//! `gemm` reaches about half of what an optimised BLAS does on the CPUs we measured
//! (`../BENCHMARKS.md`), and every model matmul is an f32 GEMM. So flex (patched in
//! `vendor/burn-flex`) lets us register an external f32 GEMM, and this module registers a
//! library's `cblas_sgemm`: OpenBLAS from the `scipy-openblas32` wheel ([`openblas`]) or MKL
//! from the `mkl` wheel ([`mkl`]). Nothing is linked at build time, the default build needs
//! crates.io alone, and a machine without either runs the pure-Rust kernel with the same
//! results up to float rounding. Which is fastest depends on the CPU (OpenBLAS on the AMD EPYC
//! we measure on, MKL on an Intel Xeon), so `auto` measures them once per machine ([`choose`]).
//!
//! - [`fetch`] and [`Vendor::fetch`] download a wheel with pip and put the library in the
//!   cache, like a model.
//! - [`select`] applies a [`GemmChoice`] (config `model.gemm`, env `LANDERMT_GEMM`) and returns
//!   the [`Kernel`] now in use, which reports and `report.json` record.

pub mod choose;
mod library;
pub mod mkl;
pub mod openblas;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use burn_flex::ops::matmul::{F32GemmArgs, set_f32_gemm};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use library::Library;
pub use library::Vendor;
pub use openblas::{PACKAGE, cached_library, fetch};

/// Which f32 GEMM to use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmChoice {
    /// The fastest on this machine of the pure-Rust kernel, OpenBLAS (fetched if missing) and
    /// MKL (fetched if missing on an Intel CPU, used from the cache elsewhere), measured on the
    /// model's products once per machine and kept in the cache ([`choose`]).
    #[default]
    Auto,
    /// OpenBLAS, or an error.
    Openblas,
    /// MKL, or an error.
    Mkl,
    /// Burn flex's pure-Rust `gemm`.
    Rust,
}

impl std::str::FromStr for GemmChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "openblas" => Ok(Self::Openblas),
            "mkl" => Ok(Self::Mkl),
            "rust" => Ok(Self::Rust),
            other => Err(ModelError::Input(format!("unknown gemm `{other}` (expected auto, openblas, mkl or rust)"))),
        }
    }
}

/// The f32 GEMM kernel in use, as reports record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "lowercase")]
pub enum Kernel {
    /// OpenBLAS for all but the tiny products and those inside flex's parallel batch loops.
    Openblas {
        library: PathBuf,
        sha256: String,
        config: String,
        threads: usize,
    },
    /// MKL, for the same products as OpenBLAS would take.
    Mkl {
        library: PathBuf,
        sha256: String,
        version: String,
        threads: usize,
    },
    Rust,
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kernel::Openblas { config, threads, .. } => write!(f, "OpenBLAS ({config}; {threads} threads)"),
            Kernel::Mkl { version, threads, .. } => write!(f, "MKL ({version}; {threads} threads)"),
            Kernel::Rust => f.write_str("pure-Rust gemm (Burn flex)"),
        }
    }
}

/// Applies `choice` (overridden by `$LANDERMT_GEMM`, which may also name a library file: MKL's
/// if its name holds `mkl`, else OpenBLAS's) and returns the kernel now in use. `shapes` are
/// the `[m, k, n]` products `Auto` measures the kernels on ([`choose::model_shapes`]).
pub fn select(choice: &GemmChoice, shapes: &[[usize; 3]]) -> Result<Kernel> {
    let env = std::env::var("LANDERMT_GEMM").ok().filter(|s| !s.is_empty());
    let choice = match env.as_deref() {
        Some(v) if v.contains('/') => {
            let vendor = if Path::new(v).file_name().is_some_and(|f| f.to_string_lossy().contains("mkl")) { Vendor::Mkl } else { Vendor::Openblas };
            return use_library(vendor, Path::new(v), false);
        }
        Some(v) => v.parse().map_err(|e| ModelError::Input(format!("$LANDERMT_GEMM: {e}")))?,
        None => choice.clone(),
    };
    match choice {
        GemmChoice::Rust => Ok(use_rust()),
        GemmChoice::Openblas => use_library(Vendor::Openblas, &cached_library(), true),
        GemmChoice::Mkl => use_library(Vendor::Mkl, &mkl::cached_library(), true),
        GemmChoice::Auto => choose::fastest(shapes),
    }
}

/// Applies `$LANDERMT_GEMM`, if set, the first time a flex device is made, so every test and
/// tool runs on the kernel it names (`LANDERMT_GEMM=openblas cargo test` runs the parity tests
/// on OpenBLAS). Unset, the kernel stays as it is (the pure-Rust one unless [`select`]ed).
pub fn apply_env_once() -> Result<()> {
    static APPLIED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let applied = APPLIED.get_or_init(|| match std::env::var_os("LANDERMT_GEMM") {
        Some(v) if !v.is_empty() => select(&GemmChoice::Auto, &choose::model_shapes(640, 2048)).map(|_| ()).map_err(|e| e.to_string()),
        _ => Ok(()),
    });
    applied.clone().map_err(ModelError::Input)
}

/// Unregisters the library: every f32 matmul runs on `gemm` from now on.
pub fn use_rust() -> Kernel {
    ACTIVE.store(NONE, Ordering::Release);
    set_f32_gemm(None);
    Kernel::Rust
}

/// Loads OpenBLAS from `path` (fetching the cached copy first if `fetch_missing` and `path` is
/// the cache's) and registers it.
pub fn use_openblas(path: &Path, fetch_missing: bool) -> Result<Kernel> {
    use_library(Vendor::Openblas, path, fetch_missing)
}

/// Loads `vendor`'s library from `path` (fetching the cached copy first if `fetch_missing` and
/// `path` is the cache's) and registers it.
pub fn use_library(vendor: Vendor, path: &Path, fetch_missing: bool) -> Result<Kernel> {
    if fetch_missing && !path.exists() && path == vendor.cached_library() {
        vendor.fetch()?;
    }
    let blas = Library::get_or_load(vendor, path)?;
    ACTIVE.store(vendor as u8 + 1, Ordering::Release);
    set_f32_gemm(Some(sgemm_hook));
    Ok(blas.kernel())
}

/// The library registered now, if any.
fn active() -> Option<&'static Library> {
    match ACTIVE.load(Ordering::Acquire) {
        NONE => None,
        v if v == Vendor::Openblas as u8 + 1 => Library::loaded(Vendor::Openblas),
        _ => Library::loaded(Vendor::Mkl),
    }
}

/// The kernel in use now.
pub fn current() -> Kernel {
    active().map_or(Kernel::Rust, Library::kernel)
}

/// Sends every f32 product cblas can express to the library, small and single-threaded ones too
/// (false: only the multi-threaded ones, the default). For tests, whose fixtures are too small
/// to reach the multi-threaded sizes.
pub fn route_all_products(all: bool) {
    ALL_PRODUCTS.store(all, Ordering::Release);
}

/// How many products the loaded libraries (OpenBLAS, MKL) have computed in this process.
pub fn library_products() -> u64 {
    PRODUCTS.load(Ordering::Relaxed)
}

static PRODUCTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many products [`crate::skinny`] has computed in this process (on a library's path).
pub fn skinny_products() -> u64 {
    SKINNY_PRODUCTS.load(Ordering::Relaxed)
}

static SKINNY_PRODUCTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Products flex runs single-threaded go to the library too from this size (multiply-adds) when
/// they are not inside a rayon worker: decoding's `[rows, d]` products, where both cores
/// reading the weights beat one (decode-b8 12–15 % faster in two back-to-back runs).
const SINGLE_THREADED_MIN_OPS: usize = 32 * 32 * 32;

/// The registered library: [`NONE`], or a [`Vendor`]'s discriminant plus one.
static ACTIVE: AtomicU8 = AtomicU8::new(NONE);
const NONE: u8 = 0;
static ALL_PRODUCTS: AtomicBool = AtomicBool::new(false);

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

/// How a strided `rows × cols` operand is passed to a row-major cblas call: (transpose flag,
/// leading dimension), or None where neither of its strides is 1.
fn operand(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(i32, i32)> {
    let (rows_i, cols_i) = (rows.max(1) as isize, cols.max(1) as isize);
    // Row-major: unit column stride; a single row needs no row stride.
    if cs == 1 || cols == 1 {
        let ld = if rows == 1 { cols_i } else { rs };
        if ld >= cols_i {
            return i32::try_from(ld).ok().map(|ld| (NO_TRANS, ld));
        }
    }
    // Column-major, i.e. the transpose stored row-major.
    if rs == 1 || rows == 1 {
        let ld = if cols == 1 { rows_i } else { cs };
        if ld >= rows_i {
            return i32::try_from(ld).ok().map(|ld| (TRANS, ld));
        }
    }
    None
}

/// flex's hook: the multi-threaded products go to OpenBLAS, and so do single-threaded ones of
/// at least [`SINGLE_THREADED_MIN_OPS`] outside rayon's workers. The rest (tiny, or inside
/// flex's own parallel loop over a batch, where OpenBLAS's threads would compete with rayon's)
/// stay on `gemm`, as do layouts cblas cannot express.
unsafe fn sgemm_hook(a: &F32GemmArgs) -> bool {
    let Some(blas) = active() else { return false };
    #[cfg(target_arch = "x86_64")]
    if crate::skinny::applies(a.m, a.n, a.k, a.lhs_cs, a.lhs_rs) && a.out_rs >= a.n as isize {
        // SAFETY: flex's hook contract, and `applies` holds.
        unsafe { crate::skinny::product(a.m, a.n, a.k, a.lhs, a.lhs_rs, (a.rhs, a.rhs_rs, a.rhs_cs), (a.out, a.out_rs, 1)) };
        SKINNY_PRODUCTS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    // x · W with W column-major (a decoding model's projections): outᵀ = Wᵀ · xᵀ.
    #[cfg(target_arch = "x86_64")]
    if crate::skinny::applies_transposed(a.m, a.n, a.k, a.rhs_rs, a.rhs_cs) && a.out_rs >= a.n as isize {
        // SAFETY: flex's hook contract with the operands swapped, and `applies_transposed` holds.
        unsafe { crate::skinny::product(a.n, a.m, a.k, a.rhs, a.rhs_cs, (a.lhs, a.lhs_cs, a.lhs_rs), (a.out, 1, a.out_rs)) };
        SKINNY_PRODUCTS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    let ops = a.m.saturating_mul(a.n).saturating_mul(a.k);
    let outside_rayon = rayon::current_thread_index().is_none() && ops >= SINGLE_THREADED_MIN_OPS;
    if !(a.parallel || outside_rayon || ALL_PRODUCTS.load(Ordering::Relaxed)) || a.m == 0 || a.n == 0 || a.k == 0 {
        return false;
    }
    let (Ok(m), Ok(n), Ok(k)) = (i32::try_from(a.m), i32::try_from(a.n), i32::try_from(a.k)) else { return false };
    let (Some((ta, lda)), Some((tb, ldb))) = (operand(a.m, a.k, a.lhs_rs, a.lhs_cs), operand(a.k, a.n, a.rhs_rs, a.rhs_cs)) else {
        return false;
    };
    if unsafe { matrix_vector(blas, a, (m, n, k)) } {
        PRODUCTS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    let Ok(ldc) = i32::try_from(if a.m == 1 { a.n as isize } else { a.out_rs }) else { return false };
    if (ldc as usize) < a.n {
        return false;
    }
    // SAFETY: flex guarantees the pointers and strides (hook contract); beta = 0 means `out`
    // is written without being read, so its uninitialised contents never matter.
    unsafe { (blas.sgemm)(ROW_MAJOR, ta, tb, m, n, k, 1.0, a.lhs, lda, a.rhs, ldb, 0.0, a.out, ldc) };
    PRODUCTS.fetch_add(1, Ordering::Relaxed);
    true
}

/// A product with one row (a decoding step's `x · W`) or one column (the tied head's `E · h`)
/// as `cblas_sgemv`, which reads the matrix once. `sgemm` packs the whole matrix first: in
/// decode-b1 the packing took 58 % of the time and the multiplication 13 %.
unsafe fn matrix_vector(blas: &Library, a: &F32GemmArgs, (m, n, k): (i32, i32, i32)) -> bool {
    // (trans, rows, cols, lda) of the matrix operand, (x, incx), (y, incy).
    let call = if a.m == 1 {
        // y[n] = W[k×n]ᵀ · x[k]
        let Some((layout, ld)) = operand(a.k, a.n, a.rhs_rs, a.rhs_cs) else { return false };
        let (trans, rows, cols) = if layout == NO_TRANS { (TRANS, k, n) } else { (NO_TRANS, n, k) };
        (trans, rows, cols, ld, a.rhs, a.lhs, a.lhs_cs, 1)
    } else if a.n == 1 {
        // y[m] = A[m×k] · x[k]
        let Some((layout, ld)) = operand(a.m, a.k, a.lhs_rs, a.lhs_cs) else { return false };
        let (trans, rows, cols) = if layout == NO_TRANS { (NO_TRANS, m, k) } else { (TRANS, k, m) };
        (trans, rows, cols, ld, a.lhs, a.rhs, a.rhs_rs, a.out_rs)
    } else {
        return false;
    };
    let (trans, rows, cols, lda, matrix, x, incx, incy) = call;
    let (Ok(incx), Ok(incy)) = (i32::try_from(incx), i32::try_from(incy)) else { return false };
    if incx <= 0 || incy <= 0 {
        return false;
    }
    // SAFETY: as for sgemm; beta = 0 writes y without reading it.
    unsafe { (blas.sgemv)(ROW_MAJOR, trans, rows, cols, 1.0, matrix, lda, x, incx, 0.0, a.out, incy) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_operands_map_to_cblas_layouts() {
        // Row-major 4×3 with padded rows, and its transpose view.
        assert_eq!(operand(4, 3, 5, 1), Some((NO_TRANS, 5)));
        assert_eq!(operand(3, 4, 1, 5), Some((TRANS, 5)));
        // One row or one column: the other stride is irrelevant.
        assert_eq!(operand(1, 3, 999, 1), Some((NO_TRANS, 3)));
        assert_eq!(operand(4, 1, 7, 999), Some((NO_TRANS, 7)));
        // Neither stride unit, a broadcast (stride 0) or a leading dimension too small: refused.
        assert_eq!(operand(4, 3, 6, 2), None);
        assert_eq!(operand(4, 3, 0, 1), None);
        assert_eq!(operand(4, 3, 2, 1), None);
    }
}
