//! OpenBLAS from PyPI's `scipy-openblas32` wheel: fetched into the cache, loaded with its
//! symbols' `scipy_` prefix.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::library::{Library, Sgemm, Sgemv, Vendor, file_sha256, thread_count};
use crate::error::{ModelError, Result};

/// The wheel we fetch, and the library inside it.
pub const PACKAGE: &str = "scipy-openblas32==0.3.34.481.3";
const LIBRARY: &str = "libscipy_openblas.so";
/// sha256 of the library in the x86_64 manylinux wheel (checked there; other platforms get the
/// wheel pip picks for them, recorded by its hash in the report).
const X86_64_LINUX_SHA256: &str = "b396d74f12ab4319e6713b3287104d64245c76c60e5bd9eaeb4b447eda66a561";

/// Where the library lives in the cache.
pub fn cached_library() -> PathBuf {
    let version = PACKAGE.replace("==", "-");
    crate::cache::cache_dir().join("blas").join(version).join(LIBRARY)
}

/// Loads the library at `path` and sets its thread count.
pub(super) fn load(path: &Path) -> Result<Library> {
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
    Ok(Library { vendor: Vendor::Openblas, sgemm, sgemv, path: path.into(), sha256, config, threads, _lib: lib })
}

/// Downloads the wheel with pip and puts its library in the cache, checked against the known
/// hash on x86_64 Linux. Returns the library's path; a cached copy is kept as it is.
pub fn fetch() -> Result<PathBuf> {
    super::library::fetch_wheel(PACKAGE, cached_library(), install)
}

/// The library from `wheel`, checked, written to `dest`.
fn install(wheel: &Path, dest: &Path) -> Result<()> {
    let bytes = library_from_wheel(wheel)?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) && digest != X86_64_LINUX_SHA256 {
        return Err(ModelError::format(wheel, format!("{LIBRARY} has sha256 {digest}, expected {X86_64_LINUX_SHA256}")));
    }
    crate::atomic::write_atomic(dest, |w| std::io::Write::write_all(w, &bytes))
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
