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

/// The global allocator: the system's, except that large blocks start on a cache line, and a
/// large zeroed block is zeroed over rayon's threads when it is asked for from inside the
/// pool. With the heap reused (above), `calloc` zero-fills every block on the calling thread,
/// and the zeroed buffers of a step are many: dfdx's gradient buffers (one per tensor of the
/// backward pass, which it asks for through `vec![0.0; n]`, out of our reach) and our ops'
/// own (`vec![0.0; n]` too: an op's 4–32 MiB buffers were 3 % of a bf16 step on the reference
/// shape as single-threaded memsets). On two threads they were a tenth of the time the
/// second core sat idle in a reference bf16 step (`perf sched`). Every block's provenance is
/// exposed (`exposed`).
pub struct Zeroing;

/// Blocks from this many bytes on are zeroed in parallel (from 256 KiB, the small shape's
/// fp32 step ran ×0.97: dfdx's smaller gradient buffers gain nothing from a split).
const PARALLEL_ZERO: usize = 1 << 20;

/// Blocks from this many bytes on start on a cache line (64 bytes), whatever alignment their
/// type asks for: the bf16 products' AMX tiles read an op's kept operands where they lie,
/// and a tile load whose rows straddle lines took four times as long.
const LINED: usize = 1 << 16;

/// The layout `Zeroing` asks `System` for: `layout`, lined up on 64 bytes when it is large.
/// A pure function of the caller's layout, so every `dealloc` and `realloc` recomputes the
/// layout its block was allocated with.
fn lined(layout: std::alloc::Layout) -> std::alloc::Layout {
    if layout.size() >= LINED && layout.align() < 64 {
        // 64 is a power of two and the size is unchanged, so this cannot fail.
        std::alloc::Layout::from_size_align(layout.size(), 64).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every block comes from `System` with the layout `lined` gives, and goes back to it
// with the same layout (`lined` depends on the caller's layout alone, which the trait's
// callers pass back unchanged); `alloc_zeroed` returns a block with all of its bytes set to
// zero, and `realloc` keeps the first `min(old, new)` bytes, as the trait asks.
unsafe impl std::alloc::GlobalAlloc for Zeroing {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        exposed(std::alloc::System.alloc(lined(layout)))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, lined(layout))
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let Ok(new) = std::alloc::Layout::from_size_align(size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if lined(layout) == layout && lined(new) == new {
            return exposed(std::alloc::System.realloc(ptr, layout, size));
        }
        // Either side is lined: a fresh block of the new layout, the bytes, the old freed.
        let fresh = self.alloc(new);
        if !fresh.is_null() {
            std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(size));
            self.dealloc(ptr, layout);
        }
        fresh
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use rayon::prelude::*;
        // Inside the pool only: rayon then exists, and a thread outside it would wait on the
        // pool's threads instead of helping.
        let pooled = rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1;
        if layout.size() < PARALLEL_ZERO || !pooled {
            return exposed(std::alloc::System.alloc_zeroed(lined(layout)));
        }
        let ptr = self.alloc(layout);
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

/// `block`, its provenance exposed: every heap block's is, so that `model::host::Values` may
/// rebuild a pointer to a tensor's whole buffer from the address of its first element
/// (`std::ptr::with_exposed_provenance`) — dfdx lends only a reference to one element. Costs
/// nothing in the machine code.
fn exposed(block: *mut u8) -> *mut u8 {
    let _ = block.expose_provenance();
    block
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

#[cfg(test)]
mod tests {
    /// Large blocks start on cache lines, fresh or grown, and growing across the threshold
    /// keeps the values (the realloc that moves between `System` layouts); small ones come
    /// back as `System` gives them, and are freed with the layout they were given.
    #[test]
    fn large_blocks_start_on_cache_lines_and_keep_their_values_as_they_grow() {
        for len in [1usize << 15, 1 << 16, 3 << 17] {
            let v = vec![1u16; len];
            assert_eq!(v.as_ptr() as usize % 64, 0, "{len} u16 not on a line");
            let z: Vec<u8> = vec![0; 2 * len];
            assert_eq!(
                z.as_ptr() as usize % 64,
                0,
                "{len} zeroed bytes not on a line"
            );
            assert!(z.iter().all(|&b| b == 0));
        }
        let mut v: Vec<u32> = (0..1000).collect();
        for grow in [10_000u32, 100_000, 400_000] {
            v.extend(v.len() as u32..grow);
            assert_eq!(v.as_ptr() as usize % 64, 0, "grown to {grow} not on a line");
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
        }
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).collect::<Vec<u32>>());
    }
}
