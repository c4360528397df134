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

/// The global allocator: the system's, except that a large zeroed block is zeroed over
/// rayon's threads when it is asked for from inside the pool. With the heap reused (above),
/// `calloc` zero-fills every block on the calling thread, and the zeroed buffers of a step
/// are many: dfdx's gradient buffers (one per tensor of the backward pass, which it asks for
/// through `vec![0.0; n]`, out of our reach) and our ops' own. On two threads they were a
/// tenth of the time the second core sat idle in a reference bf16 step (`perf sched`).
pub struct Zeroing;

/// Blocks from this many bytes on are zeroed in parallel.
const PARALLEL_ZERO: usize = 1 << 20;

// SAFETY: every method hands the request to `System` unchanged, but `alloc_zeroed`, which
// returns a block from `System::alloc` with all of its bytes set to zero, as the trait asks.
unsafe impl std::alloc::GlobalAlloc for Zeroing {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        std::alloc::System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        std::alloc::System.realloc(ptr, layout, size)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use rayon::prelude::*;
        // Inside the pool only: rayon then exists, and a thread outside it would wait on the
        // pool's threads instead of helping.
        let pooled = rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1;
        if layout.size() < PARALLEL_ZERO || !pooled {
            return std::alloc::System.alloc_zeroed(layout);
        }
        let ptr = std::alloc::System.alloc(layout);
        if !ptr.is_null() {
            // Chunks of 256 KiB, written with `write_bytes` (no allocation, no panic).
            let block = std::slice::from_raw_parts_mut(
                ptr.cast::<std::mem::MaybeUninit<u8>>(),
                layout.size(),
            );
            block
                .par_chunks_mut(1 << 18)
                .for_each(|c| c.as_mut_ptr().write_bytes(0, c.len()));
        }
        ptr
    }
}

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
