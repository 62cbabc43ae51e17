//! `gemm = "auto"` (`landermt_model::blas::choose`): every candidate is timed on the given
//! products, the fastest is registered and kept in the file, and a later call takes the kept
//! choice without measuring again. Its own process: the registered kernel is process-global.

use landermt_model::blas::choose::{Candidate, fastest_among};
use landermt_model::blas::{self, Kernel, Vendor};

fn name_of(kernel: &Kernel) -> &'static str {
    match kernel {
        Kernel::Rust => "rust",
        Kernel::Openblas { .. } => blas::PACKAGE,
        Kernel::Mkl { .. } => blas::mkl::PACKAGE,
    }
}

#[test]
fn auto_registers_the_fastest_kernel_and_keeps_the_choice() {
    let _ = landermt_model::Backend::Flex.device().unwrap();
    let shapes = [[64, 96, 128], [64, 128, 96]];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auto.json");
    let openblas = blas::fetch().inspect_err(|e| eprintln!("SKIPPED OpenBLAS as a candidate: it cannot be had here ({e})")).ok();
    let mkl = Some(blas::mkl::cached_library()).filter(|p| p.exists());
    let missing = dir.path().join("libmkl_rt.so.3");
    // The same candidates for both calls below: the kept choice is keyed by them.
    let candidates = || {
        let mut out = vec![Candidate::rust()];
        out.extend(openblas.clone().map(|path| Candidate { name: blas::PACKAGE.into(), library: Some((Vendor::Openblas, path)) }));
        out.extend(mkl.clone().map(|path| Candidate { name: blas::mkl::PACKAGE.into(), library: Some((Vendor::Mkl, path)) }));
        // A library that cannot load is left out of the choice, not an error.
        out.push(Candidate { name: "missing".into(), library: Some((Vendor::Mkl, missing.clone())) });
        out
    };

    let (kernel, measured) = fastest_among(candidates(), &shapes, &file).unwrap();
    let n = measured.candidates.len();
    assert!(!measured.candidates.contains(&"missing".to_string()), "{:?}", measured.candidates);
    assert_eq!(measured.seconds.len(), n);
    assert!(measured.seconds.iter().all(|s| s.is_finite() && *s > 0.0), "{:?}", measured.seconds);
    let best = (0..n).min_by(|&a, &b| measured.seconds[a].total_cmp(&measured.seconds[b])).unwrap();
    assert_eq!(measured.chosen, measured.candidates[best]);
    assert_eq!(name_of(&kernel), measured.chosen);
    assert_eq!(blas::current(), kernel);
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept["measurements"][0]["chosen"], measured.chosen.as_str());

    if n < 2 {
        eprintln!("SKIPPED the kept-choice half: one candidate only");
        return;
    }
    // Kept: change the file's choice to another candidate; the next call registers that one,
    // which it would not if it measured again.
    let other = measured.candidates.iter().find(|c| **c != measured.chosen).unwrap().clone();
    let mut edited = serde_json::to_value(&measured).unwrap();
    edited["chosen"] = other.clone().into();
    std::fs::write(&file, serde_json::to_vec(&serde_json::json!({ "measurements": [edited] })).unwrap()).unwrap();
    let (kernel, kept) = fastest_among(candidates(), &shapes, &file).unwrap();
    assert_eq!(kept.chosen, other);
    assert_eq!(name_of(&kernel), other);
    assert_eq!(blas::use_rust(), Kernel::Rust);
}
