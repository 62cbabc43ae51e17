//! `gemm = "auto"`: the fastest f32 GEMM on this machine, measured once on the model's own
//! products and kept in the cache (`blas/auto.json`) under the CPU's name, the thread count,
//! the libraries' versions and the environment variables that pick their kernels, so later runs
//! start at once. Delete that file to measure again.
//!
//! The candidates are the pure-Rust kernel, OpenBLAS (fetched if missing, as before there was a
//! choice) and MKL: fetched if missing where the CPU is Intel's, used from the cache elsewhere
//! (`cargo xtask fetch-blas --mkl` puts it there), since its 229 MB wheel lost to OpenBLAS on
//! the AMD EPYC we measured (BENCHMARKS.md).

use std::path::PathBuf;

use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::{Kernel, Vendor, use_library, use_rust};
use crate::error::{ModelError, Result};

/// Rows of the measured products: a batch of prefill or training tokens.
const ROWS: usize = 512;

/// The products a forward pass of a model with these sizes is made of: the FFN's two
/// projections and an attention projection, `[m, k, n]`.
pub fn model_shapes(hidden: usize, intermediate: usize) -> Vec<[usize; 3]> {
    vec![[ROWS, hidden, intermediate], [ROWS, intermediate, hidden], [ROWS, hidden, hidden]]
}

/// One machine's measurement, as `blas/auto.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The CPU's model name (`/proc/cpuinfo`).
    pub cpu: String,
    pub threads: usize,
    pub shapes: Vec<[usize; 3]>,
    /// The packages the candidates came from, and `rust`.
    pub candidates: Vec<String>,
    /// `NAME=value` of each [`KERNEL_ENV`] variable that is set: `OPENBLAS_CORETYPE=Haswell`
    /// keeps OpenBLAS on AVX2 kernels on an AVX-512 CPU (1.5× slower here), so a choice
    /// measured under one setting does not stand for another.
    #[serde(default)]
    pub env: Vec<String>,
    /// Each candidate's time for one round of `shapes` (the best of three), in seconds.
    pub seconds: Vec<f64>,
    /// The fastest candidate.
    pub chosen: String,
}

impl Measurement {
    fn is_for(&self, other: &Measurement) -> bool {
        (&self.cpu, self.threads, &self.shapes, &self.candidates, &self.env) == (&other.cpu, other.threads, &other.shapes, &other.candidates, &other.env)
    }
}

/// The environment variables with which the libraries pick their kernels.
pub const KERNEL_ENV: [&str; 4] = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE"];

/// `NAME=value` of each [`KERNEL_ENV`] variable set in this process.
fn kernel_env() -> Vec<String> {
    KERNEL_ENV.iter().filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}"))).collect()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    measurements: Vec<Measurement>,
}

/// A kernel that can be measured: `rust`, or a library fetched and found.
pub struct Candidate {
    /// `rust`, or the package the library came from (part of the measurement's key).
    pub name: String,
    pub library: Option<(Vendor, PathBuf)>,
}

impl Candidate {
    pub fn rust() -> Self {
        Candidate { name: "rust".into(), library: None }
    }

    fn activate(&self) -> Result<Kernel> {
        match &self.library {
            None => Ok(use_rust()),
            Some((vendor, path)) => use_library(*vendor, path, false),
        }
    }
}

/// Registers the fastest kernel on `shapes`, measured now or kept from an earlier run.
pub fn fastest(shapes: &[[usize; 3]]) -> Result<Kernel> {
    fastest_among(candidates(), shapes, &kept_file()).map(|(kernel, _)| kernel)
}

/// Registers the fastest of `candidates` on `shapes`: as kept in `file` for this CPU, thread
/// count and candidate list (only the kept choice is loaded then), else measured now and kept
/// there. Returns the measurement too.
pub fn fastest_among(candidates: Vec<Candidate>, shapes: &[[usize; 3]], file: &std::path::Path) -> Result<(Kernel, Measurement)> {
    let present = |c: &Candidate| c.library.as_ref().is_none_or(|(_, path)| path.exists());
    let candidates: Vec<Candidate> = candidates.into_iter().filter(present).collect();
    let mut wanted = Measurement {
        cpu: cpu_model(),
        threads: super::library::thread_count(),
        shapes: shapes.to_vec(),
        candidates: candidates.iter().map(|c| c.name.clone()).collect(),
        env: kernel_env(),
        seconds: Vec::new(),
        chosen: String::new(),
    };
    let mut kept = read_kept(file);
    if let Some(m) = kept.measurements.iter().find(|m| m.is_for(&wanted))
        && let Some(c) = candidates.iter().find(|c| c.name == m.chosen)
        && let Ok(kernel) = c.activate()
    {
        return Ok((kernel, m.clone()));
    }
    // A library that will not load is left out, with a warning.
    let mut measured: Vec<(Candidate, f64)> = Vec::new();
    for c in candidates {
        match c.activate() {
            Ok(_) => measured.push((c, time_round(shapes)?)),
            Err(e) => tracing::warn!("{} left out of the GEMM choice: {e}", c.name),
        }
    }
    let (best, _) = measured.iter().min_by(|a, b| a.1.total_cmp(&b.1)).ok_or_else(|| ModelError::Input("no GEMM kernel to choose from".into()))?;
    wanted.candidates = measured.iter().map(|(c, _)| c.name.clone()).collect();
    wanted.seconds = measured.iter().map(|(_, s)| *s).collect();
    wanted.chosen = best.name.clone();
    let times = measured.iter().map(|(c, s)| format!("{} {:.1} ms", c.name, s * 1e3)).collect::<Vec<_>>().join(", ");
    tracing::info!(chosen = %wanted.chosen, %times, kept = %file.display(), "f32 GEMM measured on the model's products");
    kept.measurements.retain(|m| !m.is_for(&wanted));
    kept.measurements.push(wanted.clone());
    let json = serde_json::to_vec_pretty(&kept).expect("plain data serialises");
    if let Err(e) = crate::atomic::write_atomic(file, |w| w.write_all(&json)) {
        tracing::warn!("the GEMM measurement could not be kept: {e}");
    }
    Ok((best.activate()?, wanted))
}

/// `rust`, OpenBLAS where it can be had, and MKL as the module doc says; a library that cannot
/// be fetched is left out with a warning.
fn candidates() -> Vec<Candidate> {
    let mut out = vec![Candidate::rust()];
    let intel = cpu_field("vendor_id").is_some_and(|v| v == "GenuineIntel");
    for (vendor, package, fetch) in [(Vendor::Openblas, super::openblas::PACKAGE, true), (Vendor::Mkl, super::mkl::PACKAGE, intel)] {
        let cached = vendor.cached_library();
        let path = if cached.exists() || !fetch { Ok(cached) } else { vendor.fetch() };
        match path {
            Ok(p) if p.exists() => out.push(Candidate { name: package.into(), library: Some((vendor, p)) }),
            Ok(_) => tracing::debug!("{} is not in the cache; `cargo xtask fetch-blas --mkl` puts it there", vendor.name()),
            Err(e) => tracing::warn!("{} unavailable, left out of the GEMM choice: {e}", vendor.name()),
        }
    }
    out
}

/// One warm-up and the best of three timed rounds over `shapes`, in seconds.
fn time_round(shapes: &[[usize; 3]]) -> Result<f64> {
    let device = burn::tensor::Device::flex();
    let operands: Vec<(Tensor<2>, Tensor<2>)> =
        shapes.iter().map(|&[m, k, n]| (Tensor::random([m, k], Distribution::Normal(0.0, 1.0), &device), Tensor::random([k, n], Distribution::Normal(0.0, 1.0), &device))).collect();
    let round = || {
        let start = std::time::Instant::now();
        for (a, b) in &operands {
            let product = a.clone().matmul(b.clone()).into_data();
            std::hint::black_box(product);
        }
        start.elapsed().as_secs_f64()
    };
    round();
    let best = (0..3).map(|_| round()).fold(f64::INFINITY, f64::min);
    if best.is_finite() { Ok(best) } else { Err(ModelError::Input("no GEMM round could be timed".into())) }
}

/// `blas/auto.json` in the cache.
pub fn kept_file() -> PathBuf {
    crate::cache::cache_dir().join("blas").join("auto.json")
}

/// The kept measurements; none if the file is missing or unreadable (measured again).
fn read_kept(file: &std::path::Path) -> Kept {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("{}: not a GEMM measurement ({e}); measuring again", file.display());
            Kept::default()
        }),
        Err(_) => Kept::default(),
    }
}

/// The CPU's model name, or the architecture where `/proc/cpuinfo` does not say.
fn cpu_model() -> String {
    cpu_field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cpu_field(key: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(env: &[&str]) -> Measurement {
        let env = env.iter().map(|s| s.to_string()).collect();
        Measurement { cpu: "AMD EPYC".into(), threads: 2, shapes: model_shapes(640, 2048), candidates: vec!["rust".into()], env, seconds: vec![0.02], chosen: "rust".into() }
    }

    #[test]
    fn a_choice_stands_only_for_the_same_kernel_environment() {
        assert!(measured(&[]).is_for(&measured(&[])));
        assert!(measured(&["OPENBLAS_CORETYPE=Haswell"]).is_for(&measured(&["OPENBLAS_CORETYPE=Haswell"])));
        assert!(!measured(&["OPENBLAS_CORETYPE=Haswell"]).is_for(&measured(&[])));
        assert!(!measured(&["OPENBLAS_CORETYPE=Haswell"]).is_for(&measured(&["OPENBLAS_CORETYPE=SkylakeX"])));
    }

    /// A file kept before `env` existed reads as measured with no such variable set.
    #[test]
    fn older_kept_files_read_as_an_empty_environment() {
        let mut json = serde_json::to_value(measured(&[])).unwrap();
        json.as_object_mut().unwrap().remove("env");
        let back: Measurement = serde_json::from_value(json).unwrap();
        assert!(back.is_for(&measured(&[])) && !back.is_for(&measured(&["OPENBLAS_L2_SIZE=512"])));
    }
}
