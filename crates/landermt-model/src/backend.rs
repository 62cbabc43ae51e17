//! Run-time choice of the compute backend (`model.backend` in configs, `--backend` on the CLI).

use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (the default).
    #[default]
    Flex,
    /// The older ndarray CPU backend, kept to cross-check numerics.
    Ndarray,
    /// GPU through wgpu (Vulkan/Metal); needs the `wgpu` cargo feature.
    Wgpu,
    /// NVIDIA GPU; needs the `cuda` cargo feature.
    Cuda,
}

impl Backend {
    pub const NAMES: [&'static str; 4] = ["flex", "ndarray", "wgpu", "cuda"];

    /// The device of this backend, or an error saying which cargo feature it needs.
    pub fn device(self) -> crate::Result<Device> {
        match self {
            Backend::Flex => {
                crate::blas::apply_env_once()?;
                #[cfg(target_arch = "x86_64")]
                crate::skinny::register_bf16();
                Ok(Device::flex())
            }
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(crate::wgpu_adapter::device_kind()?)),
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                crate::cuda_runtime::preflight()?;
                Ok(Device::cuda(0))
            }
            #[allow(unreachable_patterns)]
            other => Err(crate::ModelError::Input(format!(
                "backend `{}` is not compiled in; build with `--features {}` (e.g. `cargo run -p xtask --features {} -- …`)",
                other.name(),
                other.name(),
                other.name()
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether this build has the backend (the GPU ones are cargo features).
    pub fn compiled(self) -> bool {
        match self {
            Backend::Flex | Backend::Ndarray => true,
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The device for a test that needs this backend: `None`, after printing `SKIPPED` and the
    /// reason, where it cannot be had (the feature not built, or no GPU and no software
    /// Vulkan), so that `cargo test --workspace` passes on a fresh machine. Under CI
    /// (`LANDERMT_CI` set, as `.ci/run` does) a backend that is built but has no device fails
    /// the test instead; `.ci/run` builds `wgpu` in a pass of its own.
    pub fn test_device(self, test: &str) -> Option<Device> {
        if !self.compiled() {
            eprintln!("SKIPPED {test}: backend `{}` is not built; `cargo test --workspace --features {}` runs it", self.name(), self.name());
            return None;
        }
        match self.device() {
            Ok(device) => Some(device),
            Err(e) if std::env::var_os("LANDERMT_CI").is_some() => panic!("{test}: backend `{}` unavailable under CI: {e}", self.name()),
            Err(e) => {
                eprintln!("SKIPPED {test}: backend `{}` unavailable here ({e}); `.ci/run` installs Mesa's lavapipe for it", self.name());
                None
            }
        }
    }
}

impl FromStr for Backend {
    type Err = crate::ModelError;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(crate::ModelError::Input(format!("unknown backend `{other}` (expected one of {})", Self::NAMES.join(", ")))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
