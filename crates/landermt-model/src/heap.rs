//! Keeping freed memory for the next step.
//!
//! A training step allocates and frees the same large buffers every time: in full fine-tuning
//! on Gemma the embedding's 671 MB gradient, AdamW's updated moments, the logits over the
//! 262,144-token vocabulary and their gradient. glibc serves every block above its mmap
//! threshold (32 MB at most) with a fresh `mmap` and unmaps it on free, so each step the
//! kernel faults those pages in and zeroes them again: about 12 % of `full` training in `perf`
//! (BENCHMARKS.md). [`keep_freed_memory`] turns that off for the process, so freed blocks stay
//! in the heap and the next step reuses them: train-full ran 12–36 % faster, the other
//! workloads neither gained nor lost beyond noise. The cost is a higher resident set after a
//! peak (the heap keeps it), measured in BENCHMARKS.md.
//!
//! It applies to the main thread's heap, where the pipeline and its autodiff allocate. A block
//! too large for another thread's arena (64 MB) is still mapped and unmapped: glibc falls back
//! to `mmap` there whatever the settings.

/// Serves large blocks from the heap and keeps freed memory there (glibc's `M_MMAP_MAX = 0`
/// and no trimming). Returns whether the allocator took the settings: `false` on a C library
/// other than glibc, where this does nothing. Call it at the start of `main`, before the
/// first large allocation; it changes the whole process, so a library leaves it to its
/// program.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; glibc takes its own lock.
        // A trim threshold of -1 reads as SIZE_MAX inside glibc: never give the top back.
        unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
