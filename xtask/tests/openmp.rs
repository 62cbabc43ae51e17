//! MKL's OpenMP threads: the command line shortens their idle spin unless the user chose one.

mod common;

/// The log line `xtask` writes when it sets `GOMP_SPINCOUNT`, for `bleu` on a one-line file.
fn says_it_set_the_spin(env: &[(&str, &str)]) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("one.txt");
    std::fs::write(&file, "a line\n").unwrap();
    let file = file.to_str().unwrap();
    let mut cmd = common::xtask_command(&["-v", "bleu", "--ref", file, "--hyp", file]);
    cmd.env("RUST_LOG", "info").env_remove("GOMP_SPINCOUNT").env_remove("OMP_WAIT_POLICY").envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    log.contains("GOMP_SPINCOUNT")
}

#[test]
fn the_idle_spin_is_shortened_only_where_the_environment_leaves_it_open() {
    assert!(says_it_set_the_spin(&[]));
    assert!(!says_it_set_the_spin(&[("GOMP_SPINCOUNT", "300000")]));
    assert!(!says_it_set_the_spin(&[("OMP_WAIT_POLICY", "PASSIVE")]));
}
