//! `heap::keep_freed_memory`: a large block freed and allocated again costs no page faults.
//!
//! A test without the harness (`harness = false`): glibc keeps the settings for the main
//! thread's heap, while a thread's own arena still maps a block too large for it, and the
//! harness would run the test on a thread of its own. The program's main thread is where
//! xtask allocates its large buffers.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::hint::black_box;

    const BYTES: usize = 256 << 20;

    fn minor_faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
        usage.ru_minflt
    }

    /// Allocates `BYTES`, writes one byte per 4 KiB page, frees it.
    fn touch_and_free() {
        let mut block = vec![0u8; BYTES];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        black_box(&block);
    }

    /// Page faults of the second of two identical allocations.
    fn faults_on_reuse() -> i64 {
        touch_and_free();
        let before = minor_faults();
        touch_and_free();
        minor_faults() - before
    }

    // One check in this program: the settings are process-wide, and the control must run first.
    pub fn a_freed_large_block_is_reused_without_page_faults() {
        // glibc's default: 256 MB is above the mmap threshold, so it is unmapped on free and
        // faulted in again (one fault per 4 KiB page, or per 2 MiB where huge pages are always on).
        let control = faults_on_reuse();
        assert!(control >= (BYTES >> 21) as i64 / 2, "the control faulted only {control} times");
        assert!(landermt_model::heap::keep_freed_memory(), "glibc refused the settings");
        let kept = faults_on_reuse();
        assert!(kept * 4 < control, "{kept} page faults when reusing the block, {control} without keep_freed_memory");
        println!("test a_freed_large_block_is_reused_without_page_faults ... ok ({kept} page faults against {control})");
    }
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::a_freed_large_block_is_reused_without_page_faults();
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    println!("heap: glibc only, nothing to check here");
}
