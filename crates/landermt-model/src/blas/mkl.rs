//! Intel MKL from PyPI's `mkl` wheel: the single dynamic library `libmkl_rt` and the parts it
//! loads from its own folder (core, the LP64 interface, GNU OpenMP threading, the CPU-specific
//! kernels), fetched into the cache. Loaded like OpenBLAS; on x86_64 Linux only, where the
//! wheel exists.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::library::{Library, Sgemm, Sgemv, Vendor, file_sha256, thread_count};
use crate::error::{ModelError, Result};

/// The wheel we fetch (229 MB; its dependencies `intel-openmp` and `tbb` are not needed with
/// GNU OpenMP threading).
pub const PACKAGE: &str = "mkl==2026.2.1";
/// sha256 of the x86_64 manylinux wheel.
const WHEEL_SHA256: &str = "76322a3abf512594ab7b4e82cb72df91e4e5d195498769aa8b292373c1ddd6d1";
/// The libraries sgemm and sgemv need through `libmkl_rt`, the entry point last: its
/// presence marks a complete copy (about 490 MB).
const LIBRARIES: [&str; 10] = [
    "libmkl_core.so.3",
    "libmkl_intel_lp64.so.3",
    "libmkl_gnu_thread.so.3",
    "libmkl_sequential.so.3",
    "libmkl_def.so.3",
    "libmkl_mc3.so.3",
    "libmkl_avx2.so.3",
    "libmkl_avx512.so.3",
    "libmkl_avx10.so.3",
    "libmkl_rt.so.3",
];

// mkl_service.h's constants.
const THREADING_SEQUENTIAL: i32 = 1;
const THREADING_GNU: i32 = 3;
const INTERFACE_LP64: i32 = 0;

/// How long an idle GNU OpenMP thread spins before it sleeps, in libgomp's iterations, where
/// the environment does not say (libgomp's own default is 300,000, about a millisecond).
/// MKL's two threads otherwise spin for that long after every product, on the same cores as
/// the rayon threads that run the norms, activations and attention between products: on an
/// Intel Xeon with two cores, prefill ran 7–8 % faster with 10,000 and single-row decoding
/// no slower (BENCHMARKS.md, "OpenMP's spin").
pub const GOMP_SPINCOUNT: &str = "10000";

static SPIN_SET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets `GOMP_SPINCOUNT` to [`GOMP_SPINCOUNT`] unless `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` is
/// set already; libgomp reads it when MKL loads it. Returns whether it set it.
///
/// # Safety
/// No other thread may exist (it writes the environment, which `getenv` elsewhere may read).
pub unsafe fn short_openmp_spin() -> bool {
    if std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return false;
    }
    // SAFETY: the caller's contract (one thread).
    unsafe { std::env::set_var("GOMP_SPINCOUNT", GOMP_SPINCOUNT) };
    SPIN_SET.store(true, std::sync::atomic::Ordering::Relaxed);
    true
}

/// Removes from `cmd`'s environment what [`short_openmp_spin`] set, so that a child process
/// (PyTorch or llama.cpp beside us in the bench) runs with the environment the user gave.
pub fn without_our_spin(cmd: &mut std::process::Command) -> &mut std::process::Command {
    if SPIN_SET.load(std::sync::atomic::Ordering::Relaxed) {
        cmd.env_remove("GOMP_SPINCOUNT");
    }
    cmd
}

/// Where `libmkl_rt` lives in the cache (its parts beside it).
pub fn cached_library() -> PathBuf {
    let version = PACKAGE.replace("==", "-");
    crate::cache::cache_dir().join("blas").join(version).join(LIBRARIES[LIBRARIES.len() - 1])
}

/// Loads `libmkl_rt` at `path` with GNU OpenMP threads (sequential where libgomp is missing,
/// with a warning) and the thread count the process uses.
pub(super) fn load(path: &Path) -> Result<Library> {
    // MKL ends the process if a part it needs cannot be loaded, so check them first.
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(missing) = LIBRARIES.iter().map(|l| dir.join(l)).find(|p| !p.exists()) {
        return Err(ModelError::format(path, format!("incomplete MKL: {} is missing (run `cargo xtask fetch-blas --mkl` again)", missing.display())));
    }
    // SAFETY: loading libgomp runs only its own initialisers; it is kept loaded for MKL.
    let gomp = unsafe { libloading::Library::new("libgomp.so.1") };
    let layer = if gomp.is_ok() { THREADING_GNU } else { THREADING_SEQUENTIAL };
    if let Err(e) = &gomp {
        tracing::warn!("libgomp.so.1 cannot be loaded ({e}): MKL runs sequentially");
    }
    std::mem::forget(gomp);
    let sha256 = file_sha256(path)?;
    // SAFETY: libmkl_rt's initialisers only set up its dispatch tables.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| ModelError::format(path, format!("cannot load: {e}")))?;
    let symbol_err = |e: libloading::Error| ModelError::format(path, format!("not MKL's libmkl_rt: {e}"));
    // SAFETY: the types of mkl_cblas.h and mkl_service.h with the LP64 interface (32-bit ints).
    let (sgemm, sgemv, set_layer, set_interface, set_threads, version) = unsafe {
        let sgemm: Sgemm = *lib.get::<Sgemm>(b"cblas_sgemm\0").map_err(symbol_err)?;
        let sgemv: Sgemv = *lib.get::<Sgemv>(b"cblas_sgemv\0").map_err(symbol_err)?;
        let layer: unsafe extern "C" fn(i32) -> i32 = *lib.get(b"MKL_Set_Threading_Layer\0").map_err(symbol_err)?;
        let interface: unsafe extern "C" fn(i32) -> i32 = *lib.get(b"MKL_Set_Interface_Layer\0").map_err(symbol_err)?;
        let threads: unsafe extern "C" fn(i32) = *lib.get(b"MKL_Set_Num_Threads\0").map_err(symbol_err)?;
        let version: unsafe extern "C" fn(*mut std::ffi::c_char, i32) = *lib.get(b"MKL_Get_Version_String\0").map_err(symbol_err)?;
        (sgemm, sgemv, layer, interface, threads, version)
    };
    let threads = thread_count();
    let mut buf = [0 as std::ffi::c_char; 256];
    // SAFETY: the layers are set before any other MKL call, as mkl_service.h requires; the
    // version string is written into `buf` within the length given, NUL-terminated.
    let version = unsafe {
        set_interface(INTERFACE_LP64);
        set_layer(layer);
        set_threads(threads as i32);
        version(buf.as_mut_ptr(), buf.len() as i32);
        std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().trim().to_string()
    };
    Ok(Library { vendor: Vendor::Mkl, sgemm, sgemv, path: path.into(), sha256, config: version, threads, _lib: lib })
}

/// Downloads the wheel with pip and puts the libraries of [`LIBRARIES`] in the cache, the wheel
/// checked against its known hash. Returns `libmkl_rt`'s path; a cached copy is kept.
pub fn fetch() -> Result<PathBuf> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) && !cached_library().exists() {
        return Err(ModelError::Input("MKL's wheel is fetched on x86_64 Linux only".into()));
    }
    super::library::fetch_wheel(PACKAGE, cached_library(), install)
}

/// The libraries from `wheel`, written beside `rt` (libmkl_rt, written last) one by one, atomically.
fn install(wheel: &Path, rt: &Path) -> Result<()> {
    let dir = rt.parent().expect("cache path has a parent");
    let digest = file_sha256(wheel)?;
    if digest != WHEEL_SHA256 {
        return Err(ModelError::format(wheel, format!("sha256 {digest}, expected {WHEEL_SHA256}")));
    }
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::format(wheel, e.to_string()))?;
    let version = PACKAGE.split("==").nth(1).expect("a pinned version");
    for name in LIBRARIES {
        let entry_name = format!("mkl-{version}.data/data/lib/{name}");
        let mut entry = zip.by_name(&entry_name).map_err(|e| ModelError::format(wheel, format!("{entry_name}: {e}")))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| ModelError::io(wheel, e))?;
        crate::atomic::write_atomic(&dir.join(name), |w| w.write_all(&bytes))?;
    }
    Ok(())
}
