//! Allocator settings for training. A step frees and re-allocates the same large tensor
//! buffers over and over. glibc's malloc serves every block above its mmap threshold (128 KiB
//! at first) with a fresh `mmap` and returns it with `munmap`, so each step page-faults its
//! activations in again, zeroes them, and shoots down TLBs on every core: about a fifth of a
//! step on two threads in `perf` (`pretext bench`, issue 7). Raising the mmap threshold to its
//! maximum and not trimming the heap keeps those blocks for reuse; peak RSS stays the same
//! because the same buffers are live at the peak either way.
//!
//! The threshold cannot go past 32 MiB, and the FFN's activations on the large shape are
//! 32 MiB each: whether such a block was served from a free chunk of the heap or by a fresh
//! `mmap` then depended on what else happened to be free. After a change in when the
//! optimiser's buffers are freed, 16 k page faults a step (125 ms of system time on the large
//! shape) came back that way, so `mmap` is switched off altogether (`M_MMAP_MAX` 0): every
//! block comes from the heap and is reused.

/// Applies the settings; call once, before any large allocation. A no-op off glibc.
pub fn tune_for_training() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before threads start.
    unsafe {
        // 32 MiB is glibc's ceiling for the threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

/// This machine's physical memory in bytes (`MemTotal`), or `None` where it cannot be read.
pub fn machine_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}
