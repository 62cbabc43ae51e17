//! Faults of the file system: a run folder that fills up, and one that turns read-only. Each
//! must end with a clear error naming the file, the artifacts written before intact, and no
//! temporary file left behind. Both need a small tmpfs, so they need `mount` (root, as in CI);
//! where it is refused they say SKIPPED and why.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::xtask;

/// A tmpfs of `size` at `dir`, unmounted on drop; `None` where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status().is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// configs/quick.toml writing into `run`.
fn config(dir: &Path, run: &Path) -> String {
    common::quick_config(dir, run, &[]).display().to_string()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.starts_with(".tmp")).collect()
}

#[test]
fn a_full_disk_and_a_read_only_folder_give_clear_errors_and_keep_earlier_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let Some(fs) = Tmpfs::mount(&run, "160k") else {
        eprintln!("SKIPPED: `mount -t tmpfs` is not allowed here (needs root)");
        return;
    };
    let cfg = config(tmp.path(), &run);
    assert!(xtask(&["probe", "--config", &cfg]).status.success());
    let layers = std::fs::read(run.join("layers.json")).unwrap();

    // Full: the score stage's partial scores and artifacts do not fit in 160 KiB.
    let out = xtask(&["score", "--config", &cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the score stage fitted in 160 KiB");
    assert!(err.contains("No space left on device") && err.contains(&run.display().to_string()), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(run.join("layers.json")).unwrap(), layers, "layers.json changed");
    assert!(leftovers(&run).is_empty() && leftovers(&run.join("score")).is_empty(), "temporary files left behind");

    // Read-only: the same folder remounted; nothing can be written, nothing is lost.
    let _ = std::fs::remove_dir_all(run.join("score"));
    assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&fs.0).status().unwrap().success());
    let out = xtask(&["probe", "--config", &cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Read-only file system") && err.contains(&run.display().to_string()), "{err}");
    assert_eq!(std::fs::read(run.join("layers.json")).unwrap(), layers);
}
