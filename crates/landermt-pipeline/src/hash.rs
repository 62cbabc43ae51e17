//! SHA-256 of bytes, files and model folders: the identities stamps, kept deltas and reports
//! name their inputs by.

use std::path::Path;

use anyhow::{Context, Result};

/// SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, or of every file in a folder in name order (a Hugging Face model).
pub fn sha256_path(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = vec![path.to_path_buf()];
    if path.is_dir() {
        files = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>()?;
        files.retain(|p| p.is_file());
        files.sort();
    }
    let mut h = Sha256::new();
    for f in files {
        let mut file = std::fs::File::open(&f).with_context(|| format!("hashing {}", f.display()))?;
        std::io::copy(&mut file, &mut h)?;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
