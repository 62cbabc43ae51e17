//! A short deterministic run of every fuzz target (`cargo xtask fuzz` runs them for longer):
//! no panic, no hang and no allocation beyond the input's size on a fixed sequence of inputs.

#[global_allocator]
static ALLOC: landermt_fuzz::Tracking = landermt_fuzz::Tracking;

#[test]
fn every_target_survives_a_short_deterministic_run() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join("landermt-fuzz-short");
    let mut report = Vec::new();
    for target in landermt_fuzz::targets() {
        let execs = if target.name == "tokenizer-json" { 300 } else { 2_000 };
        let stats = landermt_fuzz::run(&target, &root, landermt_fuzz::Budget { execs: Some(execs), seconds: None }, 7, &out.join(target.name)).unwrap();
        assert_eq!(stats.execs, execs);
        if !stats.clean() {
            report.push(format!(
                "{}: {} panics {:?}, {} hangs, {} over-allocations (largest {:?})",
                target.name,
                stats.panics.len(),
                stats.panics,
                stats.hangs,
                stats.over_allocations,
                stats.largest_allocation
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
