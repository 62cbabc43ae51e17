//! `backend = "wgpu"` in a build without it: an error naming the feature. With it (`cargo test
//! --features wgpu`), on a machine without any Vulkan driver: a clear error that says what to
//! install, exit code ≠ 0, and no panic. The Vulkan loader is pointed at a driver list that
//! does not exist, which is what a machine without `mesa-vulkan-drivers` (or a GPU) looks like.

mod common;

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_a_vulkan_driver_is_refused_clearly() {
    let out = common::xtask_command(&["generate", "--model", "tests/fixtures/hf-tiny/llama-tiny", "--text", "Le chat", "--max-new-tokens", "2", "--backend", "wgpu"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env_remove("LANDERMT_WGPU_DEVICE")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no GPU or software adapter") && err.contains("mesa-vulkan-drivers"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[cfg(feature = "wgpu")]
#[test]
fn a_named_wgpu_adapter_that_is_not_there_is_refused_clearly() {
    let out = common::xtask_command(&["generate", "--model", "tests/fixtures/hf-tiny/llama-tiny", "--text", "Le chat", "--max-new-tokens", "2", "--backend", "wgpu"])
        .env("LANDERMT_WGPU_DEVICE", "discrete:7")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("LANDERMT_WGPU_DEVICE=discrete:7 names no adapter"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

// The default build has no GPU backend: asking for one says which feature builds it.
#[cfg(not(feature = "wgpu"))]
#[test]
fn wgpu_in_a_build_without_it_names_the_feature() {
    let out = common::xtask_command(&["generate", "--model", "tests/fixtures/hf-tiny/llama-tiny", "--text", "Le chat", "--max-new-tokens", "2", "--backend", "wgpu"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("backend `wgpu` is not compiled in; build with `--features wgpu`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

// `cargo build --features cuda` builds offline only with vendor/cubecl-cuda, whose LLVM path
// (a build script that downloads LLVM from GitHub) is cut off. Losing the patch (a dependency
// update, a dropped `[patch.crates-io]` line) would show here first.
#[test]
fn cubecl_cuda_is_the_vendored_copy_without_llvm() {
    let lock = std::fs::read_to_string(common::root().join("Cargo.lock")).unwrap();
    let entry = lock.split("[[package]]").find(|p| p.contains("name = \"cubecl-cuda\"")).expect("cubecl-cuda in Cargo.lock");
    assert!(!entry.contains("source = "), "cubecl-cuda comes from a registry, not vendor/cubecl-cuda:{entry}");
    assert!(!entry.contains("\"cubecl-llvm\""), "the vendored cubecl-cuda depends on cubecl-llvm again:{entry}");
    let manifest = std::fs::read_to_string(common::root().join("vendor/cubecl-cuda/Cargo.toml")).unwrap();
    assert!(manifest.contains("version = \"") && manifest.contains("llvm = [\"dep:cubecl-llvm\"]"), "vendor/cubecl-cuda/Cargo.toml lost its optional llvm feature");
}
