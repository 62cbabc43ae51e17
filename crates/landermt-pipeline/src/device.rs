//! The compute device and the model a run config names.

use std::path::PathBuf;

use anyhow::{Result, bail};
use landermt_model::{Backend, cache};

/// `backend`'s device; for `flex`, the f32 GEMM kernel is selected first (once per process)
/// and logged. `gemm = "auto"` measures the kernels on the products of the model at `model`
/// (Gemma 3 270M's sizes if none is given or its configuration cannot be read).
pub fn gemm_device(backend: Backend, gemm: &landermt_model::blas::GemmChoice, model: Option<&std::path::Path>) -> Result<burn::tensor::Device> {
    if backend == Backend::Flex {
        static SELECTED: std::sync::Once = std::sync::Once::new();
        let mut result = Ok(());
        SELECTED.call_once(|| {
            let (hidden, intermediate) = model.and_then(|p| landermt_model::config_at(p).ok()).map_or((640, 2048), |c| (c.hidden_size, c.intermediate_size));
            match landermt_model::blas::select(gemm, &landermt_model::blas::choose::model_shapes(hidden, intermediate)) {
                Ok(kernel) => tracing::info!(%kernel, "f32 GEMM"),
                Err(e) => result = Err(e),
            }
        });
        result?;
    }
    Ok(backend.device()?)
}

/// The names of the models `fetch-model` knows, comma-separated.
pub fn known_names() -> String {
    cache::KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// A model argument: an existing path, or the name of a known model that must be cached.
pub fn resolve_model(arg: &str) -> Result<PathBuf> {
    let path = PathBuf::from(arg);
    if path.exists() {
        return Ok(path);
    }
    match cache::known(arg) {
        Some(m) if m.is_cached() => Ok(m.path()),
        Some(m) => bail!("model `{arg}` is not in the cache ({}); run `cargo xtask fetch-model {arg}`", m.path().display()),
        None => bail!("`{arg}` is neither a file or folder nor a known model ({})", known_names()),
    }
}
