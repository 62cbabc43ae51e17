//! Mutation fuzzing of every parser that reads user files, on stable Rust.
//!
//! Each [`Target`] starts from valid files (its seeds) and feeds the parser mutated copies:
//! bit flips, boundary integers written over header fields, deleted, inserted and repeated
//! ranges, truncations and format tokens (`[`, `=`, `\t`, `null`, `1e999`, a byte-order mark,
//! invalid UTF-8). A run counts executions, and records:
//! - panics (each crashing input is saved under `target/fuzz/{target}/`);
//! - executions slower than a second (hangs);
//! - the largest single allocation against the input's size (with [`Tracking`] as the global
//!   allocator): a header that declares 2⁶³ elements must be refused before anything is
//!   allocated for it.
//!
//! It is not coverage-guided (that needs nightly's sanitizers or an external fuzzer); the
//! seeds and mutations are chosen to reach the checks that matter.

mod checkpoint;
mod mutate;
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use mutate::Mutator;
pub use targets::{Target, targets};

/// A global allocator that records the largest single allocation while [`track`] is on.
pub struct Tracking;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The largest single allocation of `f` (0 unless [`Tracking`] is the global allocator).
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);
    f();
    TRACKING.store(false, Ordering::Relaxed);
    LARGEST.load(Ordering::Relaxed)
}

/// An allocation is out of bounds when it exceeds this many times the input, plus 64 MiB:
/// what parsing a valid file of that size may need, not what a header claims.
pub const ALLOCATION_FACTOR: usize = 64;
const ALLOCATION_SLACK: usize = 64 << 20;
/// An execution slower than this is a hang.
pub const HANG: Duration = Duration::from_secs(1);

/// How long to fuzz.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub execs: Option<u64>,
    pub seconds: Option<f64>,
}

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub target: String,
    pub execs: u64,
    pub seconds: f64,
    /// Saved crashing inputs.
    pub panics: Vec<PathBuf>,
    pub hangs: u64,
    /// Inputs whose largest allocation exceeded the bound.
    pub over_allocations: u64,
    /// The largest single allocation seen, in bytes, and its input's length.
    pub largest_allocation: (usize, usize),
    pub slowest: Duration,
}

impl Stats {
    pub fn clean(&self) -> bool {
        self.panics.is_empty() && self.hangs == 0 && self.over_allocations == 0
    }
}

/// Fuzzes `target` within `budget`, from RNG seed `seed`, saving crashing inputs under `out`.
pub fn run(target: &Target, root: &Path, budget: Budget, seed: u64, out: &Path) -> std::io::Result<Stats> {
    let seeds = (target.seeds)(root)?;
    let work = tempfile::tempdir()?;
    let mut mutator = Mutator::new(seed, target.tokens);
    let mut stats = Stats { target: target.name.to_string(), ..Default::default() };
    let start = Instant::now();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if budget.execs.is_some_and(|n| stats.execs >= n) || budget.seconds.is_some_and(|s| elapsed >= s) {
            break;
        }
        let input = mutator.mutate(&seeds);
        let t0 = Instant::now();
        let mut panicked = false;
        let largest = largest_allocation(|| {
            panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(work.path(), &input))).is_err();
        });
        let took = t0.elapsed();
        stats.execs += 1;
        stats.slowest = stats.slowest.max(took);
        stats.hangs += u64::from(took > HANG);
        if largest > stats.largest_allocation.0 {
            stats.largest_allocation = (largest, input.len());
        }
        let over = largest > ALLOCATION_FACTOR * input.len() + ALLOCATION_SLACK;
        stats.over_allocations += u64::from(over);
        if panicked || over || took > HANG {
            std::fs::create_dir_all(out)?;
            let kind = if panicked {
                "panic"
            } else if over {
                "alloc"
            } else {
                "hang"
            };
            let path = out.join(format!("{kind}-{}-{}", seed, stats.execs));
            std::fs::write(&path, &input)?;
            if panicked {
                stats.panics.push(path);
            }
        }
    }
    std::panic::set_hook(quiet);
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}
