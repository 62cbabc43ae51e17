//! `landermt-fuzz` (what `cargo xtask fuzz` runs): every chosen target for a budget of
//! executions or seconds, one Markdown row per target (RELIABILITY.md).
//!
//!     cargo run -p landermt-fuzz -- [--target T|all] [--secs N | --execs N] [--seed S]

use std::path::PathBuf;
use std::process::ExitCode;

// The largest allocation of each execution is measured here, and only here: no other landermt
// program pays for the tracking.
#[global_allocator]
static ALLOC: landermt_fuzz::Tracking = landermt_fuzz::Tracking;

struct Args {
    target: String,
    secs: Option<f64>,
    execs: Option<u64>,
    seed: u64,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args { target: "all".into(), secs: None, execs: None, seed: 1 };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--target" => a.target = value,
            "--secs" => a.secs = Some(value.parse().map_err(|e| bad(&e))?),
            "--execs" => a.execs = Some(value.parse().map_err(|e| bad(&e))?),
            "--seed" => a.seed = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown option {other} (--target, --secs, --execs, --seed)")),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> Result<bool, String> {
    let all = landermt_fuzz::targets();
    let chosen: Vec<_> = all.iter().filter(|t| a.target == "all" || t.name == a.target).collect();
    if chosen.is_empty() {
        let names: Vec<&str> = all.iter().map(|t| t.name).collect();
        return Err(format!("unknown fuzz target `{}` ({}, or all)", a.target, names.join(", ")));
    }
    let budget = landermt_fuzz::Budget { execs: a.execs.or(if a.secs.is_none() { Some(1_000_000) } else { None }), seconds: a.secs };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!("| target | executions | seconds | exec/s | panics | hangs (> 1 s) | over-allocations | largest allocation / input | slowest |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|");
    let mut clean = true;
    for t in chosen {
        let s = landermt_fuzz::run(t, &root, budget, a.seed, &root.join("target/fuzz").join(t.name)).map_err(|e| format!("{}: {e}", t.name))?;
        let (big, len) = s.largest_allocation;
        let rate = s.execs as f64 / s.seconds.max(1e-9);
        println!(
            "| {} | {} | {:.0} | {rate:.0} | {} | {} | {} | {big} B / {len} B | {:.1} ms |",
            t.name,
            s.execs,
            s.seconds,
            s.panics.len(),
            s.hangs,
            s.over_allocations,
            s.slowest.as_secs_f64() * 1e3
        );
        s.panics.iter().for_each(|p| eprintln!("  panic: {}", p.display()));
        clean &= s.clean();
    }
    Ok(clean)
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|a| run(&a)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the fuzzer found failures; their inputs are under target/fuzz/");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
