//! Inputs the fuzzer once crashed on (`tests/fuzz-seeds/regressions/{target}/`), replayed:
//! each must now be refused or read without a panic.

#[test]
fn inputs_that_once_panicked_no_longer_do() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut replayed = 0;
    for t in landermt_fuzz::targets() {
        let Ok(entries) = std::fs::read_dir(root.join("tests/fuzz-seeds/regressions").join(t.name)) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let work = tempfile::tempdir().unwrap();
            assert!(std::panic::catch_unwind(|| (t.run)(work.path(), &bytes)).is_ok(), "{} panics", p.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 5, "{replayed} regression inputs found");
}
