//! The f32 GEMM kernel: OpenBLAS loaded at run time where it can be had, Burn flex's pure-Rust
//! `gemm` otherwise.
//!
//! `gemm` reaches about half of what an optimised BLAS does on the CPUs we measured
//! (`../BENCHMARKS.md`), and every model matmul is an f32 GEMM. So flex (patched in
//! `vendor/burn-flex`) lets us register an external f32 GEMM, and this module registers
//! OpenBLAS's `cblas_sgemm`, taken from the `scipy-openblas32` wheel on PyPI: nothing is linked
//! at build time, the default build needs crates.io alone, and a machine without the library
//! runs the pure-Rust kernel with the same results up to float rounding.
//!
//! - [`fetch`] downloads the wheel with pip and puts the library in the cache, like a model.
//! - [`select`] applies a [`GemmChoice`] (config `model.gemm`, env `LANDERMT_GEMM`) and returns
//!   the [`Kernel`] now in use, which reports and `report.json` record.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use burn_flex::ops::matmul::{F32GemmArgs, set_f32_gemm};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// The wheel we fetch, and the library inside it.
pub const PACKAGE: &str = "scipy-openblas32==0.3.34.481.3";
const LIBRARY: &str = "libscipy_openblas.so";
/// sha256 of the library in the x86_64 manylinux wheel (checked there; other platforms get the
/// wheel pip picks for them, recorded by its hash in the report).
const X86_64_LINUX_SHA256: &str = "b396d74f12ab4319e6713b3287104d64245c76c60e5bd9eaeb4b447eda66a561";

/// Which f32 GEMM to use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmChoice {
    /// OpenBLAS from the cache, fetched if missing; the pure-Rust kernel if it cannot be had.
    #[default]
    Auto,
    /// OpenBLAS, or an error.
    Openblas,
    /// Burn flex's pure-Rust `gemm`.
    Rust,
}

impl std::str::FromStr for GemmChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "openblas" => Ok(Self::Openblas),
            "rust" => Ok(Self::Rust),
            other => Err(ModelError::Input(format!("unknown gemm `{other}` (expected auto, openblas or rust)"))),
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
    Rust,
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kernel::Openblas { config, threads, .. } => write!(f, "OpenBLAS ({config}; {threads} threads)"),
            Kernel::Rust => f.write_str("pure-Rust gemm (Burn flex)"),
        }
    }
}

/// Where the library lives in the cache.
pub fn cached_library() -> PathBuf {
    let version = PACKAGE.replace("==", "-");
    crate::cache::cache_dir().join("blas").join(version).join(LIBRARY)
}

/// Applies `choice` (overridden by `$LANDERMT_GEMM`, which may also name a library file) and
/// returns the kernel now in use. `Auto` fetches OpenBLAS into the cache if it is missing and
/// falls back to the pure-Rust kernel, with a warning, if it cannot be fetched or loaded.
pub fn select(choice: &GemmChoice) -> Result<Kernel> {
    let env = std::env::var("LANDERMT_GEMM").ok().filter(|s| !s.is_empty());
    let (choice, path) = match env.as_deref() {
        Some(v) if v.contains('/') => (GemmChoice::Openblas, PathBuf::from(v)),
        Some(v) => (v.parse().map_err(|e| ModelError::Input(format!("$LANDERMT_GEMM: {e}")))?, cached_library()),
        None => (choice.clone(), cached_library()),
    };
    match choice {
        GemmChoice::Rust => Ok(use_rust()),
        GemmChoice::Openblas => use_openblas(&path, true),
        GemmChoice::Auto => match use_openblas(&path, true) {
            Ok(k) => Ok(k),
            Err(e) => {
                tracing::warn!("OpenBLAS unavailable, using the pure-Rust GEMM: {e}");
                Ok(use_rust())
            }
        },
    }
}

/// Applies `$LANDERMT_GEMM`, if set, the first time a flex device is made, so every test and
/// tool runs on the kernel it names (`LANDERMT_GEMM=openblas cargo test` runs the parity tests
/// on OpenBLAS). Unset, the kernel stays as it is (the pure-Rust one unless [`select`]ed).
pub fn apply_env_once() -> Result<()> {
    static APPLIED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let applied = APPLIED.get_or_init(|| match std::env::var_os("LANDERMT_GEMM") {
        Some(v) if !v.is_empty() => select(&GemmChoice::Auto).map(|_| ()).map_err(|e| e.to_string()),
        _ => Ok(()),
    });
    applied.clone().map_err(ModelError::Input)
}

/// Unregisters OpenBLAS: every f32 matmul runs on `gemm` from now on.
pub fn use_rust() -> Kernel {
    ENABLED.store(false, Ordering::Release);
    set_f32_gemm(None);
    Kernel::Rust
}

/// Loads OpenBLAS from `path` (fetching the cached copy first if `fetch_missing` and `path` is
/// the cache's) and registers it.
pub fn use_openblas(path: &Path, fetch_missing: bool) -> Result<Kernel> {
    if fetch_missing && !path.exists() && path == cached_library() {
        fetch()?;
    }
    let blas = Openblas::get_or_load(path)?;
    ENABLED.store(true, Ordering::Release);
    set_f32_gemm(Some(sgemm_hook));
    Ok(blas.kernel())
}

/// The kernel in use now.
pub fn current() -> Kernel {
    match (ENABLED.load(Ordering::Acquire), LOADED.get()) {
        (true, Some(Ok(b))) => b.kernel(),
        _ => Kernel::Rust,
    }
}

/// Sends every f32 product cblas can express to OpenBLAS, small and single-threaded ones too
/// (false: only the multi-threaded ones, the default). For tests, whose fixtures are too small
/// to reach the multi-threaded sizes.
pub fn route_all_products(all: bool) {
    ALL_PRODUCTS.store(all, Ordering::Release);
}

/// How many products OpenBLAS has computed in this process.
pub fn openblas_products() -> u64 {
    PRODUCTS.load(Ordering::Relaxed)
}

static PRODUCTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many products [`crate::skinny`] has computed in this process (on the OpenBLAS path).
pub fn skinny_products() -> u64 {
    SKINNY_PRODUCTS.load(Ordering::Relaxed)
}

static SKINNY_PRODUCTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Products flex runs single-threaded go to OpenBLAS too from this size (multiply-adds) when
/// they are not inside a rayon worker: decoding's `[rows, d]` products, where both cores
/// reading the weights beat one (decode-b8 12–15 % faster in two back-to-back runs).
const SINGLE_THREADED_MIN_OPS: usize = 32 * 32 * 32;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALL_PRODUCTS: AtomicBool = AtomicBool::new(false);
/// One library per process: the first load wins (OpenBLAS keeps global thread state).
static LOADED: OnceLock<std::result::Result<Openblas, String>> = OnceLock::new();

type Sgemm = unsafe extern "C" fn(i32, i32, i32, i32, i32, i32, f32, *const f32, i32, *const f32, i32, f32, *mut f32, i32);
type Sgemv = unsafe extern "C" fn(i32, i32, i32, i32, f32, *const f32, i32, *const f32, i32, f32, *mut f32, i32);

struct Openblas {
    sgemm: Sgemm,
    sgemv: Sgemv,
    path: PathBuf,
    sha256: String,
    config: String,
    threads: usize,
    /// Keeps the symbols valid for the life of the process.
    _lib: libloading::Library,
}

impl Openblas {
    fn kernel(&self) -> Kernel {
        Kernel::Openblas { library: self.path.clone(), sha256: self.sha256.clone(), config: self.config.clone(), threads: self.threads }
    }

    fn get_or_load(path: &Path) -> Result<&'static Openblas> {
        let loaded = LOADED.get_or_init(|| Self::load(path).map_err(|e| e.to_string()));
        match loaded {
            Ok(b) if b.path == path => Ok(b),
            Ok(b) => Err(ModelError::Input(format!("{}: another OpenBLAS ({}) is already loaded in this process", path.display(), b.path.display()))),
            Err(e) => Err(ModelError::Input(e.clone())),
        }
    }

    fn load(path: &Path) -> Result<Openblas> {
        let sha256 = file_sha256(path)?;
        // OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) before sleeping, and between our
        // products that takes the cores from rayon's element-wise work: train-landermt ran 30 %
        // faster with the shortest wait (2^4). It reads the variable when it is loaded.
        if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
            // SAFETY: set once, before the library that reads it is loaded; nothing else in
            // this process reads or writes this variable.
            unsafe { std::env::set_var("OPENBLAS_THREAD_TIMEOUT", "4") };
        }
        // SAFETY: loading runs the library's initialisers; this one is OpenBLAS, whose
        // initialisers only probe the CPU and set up its thread pool.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| ModelError::format(path, format!("cannot load: {e}")))?;
        let symbol_err = |e: libloading::Error| ModelError::format(path, format!("not the scipy-openblas32 library: {e}"));
        // SAFETY: the symbol types are those of scipy-openblas32's cblas.h (32-bit ints).
        let (sgemm, sgemv, set_threads, get_config) = unsafe {
            let sgemm: Sgemm = *lib.get::<Sgemm>(b"scipy_cblas_sgemm\0").map_err(symbol_err)?;
            let sgemv: Sgemv = *lib.get::<Sgemv>(b"scipy_cblas_sgemv\0").map_err(symbol_err)?;
            let set: unsafe extern "C" fn(i32) = *lib.get(b"scipy_openblas_set_num_threads\0").map_err(symbol_err)?;
            let cfg: unsafe extern "C" fn() -> *const std::ffi::c_char = *lib.get(b"scipy_openblas_get_config\0").map_err(symbol_err)?;
            (sgemm, sgemv, set, cfg)
        };
        let threads = thread_count();
        // SAFETY: plain calls with valid arguments; get_config returns a static C string.
        let config = unsafe {
            set_threads(threads as i32);
            std::ffi::CStr::from_ptr(get_config()).to_string_lossy().trim().to_string()
        };
        tracing::info!(library = %path.display(), %config, threads, "OpenBLAS loaded for f32 GEMM");
        Ok(Openblas { sgemm, sgemv, path: path.into(), sha256, config, threads, _lib: lib })
    }
}

/// The thread count the rest of the process uses: `$RAYON_NUM_THREADS`, else every core.
fn thread_count() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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
    let Some(Ok(blas)) = LOADED.get() else { return false };
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
unsafe fn matrix_vector(blas: &Openblas, a: &F32GemmArgs, (m, n, k): (i32, i32, i32)) -> bool {
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

/// Downloads the wheel with pip and puts its library in the cache, checked against the known
/// hash on x86_64 Linux. Returns the library's path; a cached copy is kept as it is.
pub fn fetch() -> Result<PathBuf> {
    let dest = cached_library();
    if dest.exists() {
        return Ok(dest);
    }
    let dir = dest.parent().expect("cache path has a parent");
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| ModelError::io(&wheels, e))?;
    crate::cache::pip_download(PACKAGE, &wheels, &["--only-binary=:all:", "--quiet"])?;
    let result = install(&wheels, &dest);
    // Either way: a wheel damaged by an interrupted download must not fail the next fetch.
    let _ = std::fs::remove_dir_all(&wheels);
    result.map(|()| dest)
}

/// The library from the wheel in `wheels`, checked, written to `dest`.
fn install(wheels: &Path, dest: &Path) -> Result<()> {
    let wheel = std::fs::read_dir(wheels)
        .map_err(|e| ModelError::io(wheels, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| ModelError::format(wheels, "pip downloaded no wheel"))?;
    let bytes = library_from_wheel(&wheel)?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) && digest != X86_64_LINUX_SHA256 {
        return Err(ModelError::format(&wheel, format!("{LIBRARY} has sha256 {digest}, expected {X86_64_LINUX_SHA256}")));
    }
    crate::atomic::write_atomic(dest, |w| w.write_all(&bytes))
}

fn library_from_wheel(wheel: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::format(wheel, e.to_string()))?;
    let name = format!("scipy_openblas32/lib/{LIBRARY}");
    let mut entry = zip.by_name(&name).map_err(|e| ModelError::format(wheel, format!("{name}: {e}")))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(|e| ModelError::io(wheel, e))?;
    Ok(bytes)
}

fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
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
