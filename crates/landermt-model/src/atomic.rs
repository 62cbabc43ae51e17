//! Atomic file writes: write to a temporary file in the destination's folder, flush it to disk,
//! then rename it over the destination, so a killed run leaves either the old file or the new
//! one, never a torn one.

use std::io::Write;
use std::path::Path;

use crate::error::{ModelError, Result};

/// Writes `path` atomically with `fill`, which receives a buffered writer.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    // Temporary files are private (0600); what we publish is an ordinary file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let tmp = builder.tempfile_in(dir).map_err(|e| ModelError::io(dir, e))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file());
        fill(&mut w).map_err(|e| ModelError::io(path, e))?;
        w.flush().map_err(|e| ModelError::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| ModelError::io(path, e))?;
    tmp.persist(path).map_err(|e| ModelError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("artifact.json");
        write_atomic(&p, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"half of the new")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }
}
