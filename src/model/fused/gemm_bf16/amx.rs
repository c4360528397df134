//! Intel AMX for the bf16 products, where the CPU has it: `tdpbf16ps` adds the products of a
//! 16-row tile of A (16 k pairs per row, 64 bytes) and a 16-pair tile of B (16 columns of
//! pairs) into a 16 × 16 tile of f32 sums — 8,192 multiply-adds in one instruction, six times
//! the peak of `vdpbf16ps` on a core (3.2 TFLOP/s against ~0.5 measured on one core of this
//! project's Xeon). The arithmetic is the same: bf16 operands, products exact in f32, f32
//! sums in k order.
//!
//! The kernel holds a 32 × 32 block of C in four tiles (two A tiles of 16 rows, two B tiles
//! of 16 columns), over the same packed panels of B as `kernel.rs` (pair by pair, 32 lanes:
//! a B tile is half a panel's width, 16 pairs deep) and strips of A held row by row, as
//! words of k pairs (a tile is 16 rows of 16 words at any stride, so bf16 rows an op kept are
//! read where they lie). Tiles always span 16 pairs: the driver pads each k block's pairs
//! to a multiple of 16 with zeros on both sides, and rows or columns past the product's end
//! hold whatever the buffers held, in rows and columns of C that are never stored.
//!
//! Linux lends the tiles' 8 KiB of register state to a process only when asked
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and each thread loads its tile shapes once
//! (`ldtilecfg`) before its first tile instruction. The instructions are written in `asm!`:
//! Rust's AMX intrinsics are unstable.

use super::kernel::{store_row, Tile};
use super::NR;
use std::cell::Cell;

/// Rows of A per strip: two tiles.
pub(super) const MR: usize = 32;
/// k pairs per tile: 16 words of 32 bits make a tile row of 64 bytes.
pub(super) const PAIRS: usize = 16;

thread_local! {
    /// Whether this thread has loaded the tile shapes.
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
    /// Whether products started on this thread keep to `vdpbf16ps` (`without_amx`).
    static WITHOUT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the products started on this thread run on AMX tiles: the CPU has AMX-BF16 and
/// AMX-TILE, Linux lent the tile state, `PRETEXT_CPU_AMX=0` is not set (it keeps a whole run
/// on `vdpbf16ps`, for comparisons), and the thread is not inside `without_amx`.
pub fn enabled() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ready = *READY.get_or_init(|| {
        std::env::var("PRETEXT_CPU_AMX").map_or(true, |v| v != "0") && super::native() && lent()
    });
    ready && !WITHOUT.with(Cell::get)
}

/// Runs `f` with this thread's products on `vdpbf16ps` even where AMX is there: how the tests
/// check both kernels in one process.
pub fn without_amx<R>(f: impl FnOnce() -> R) -> R {
    let before = WITHOUT.with(|w| w.replace(true));
    let out = f();
    WITHOUT.with(|w| w.set(before));
    out
}

/// Whether the CPU has the tiles (CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE) and
/// Linux has lent this process their state (asked once; a kernel without AMX support refuses).
fn lent() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        // Leaf 7 exists on every CPU with AVX-512 (`native()` held).
        let ids = std::arch::x86_64::__cpuid_count(7, 0);
        if ids.edx >> 22 & 1 == 0 || ids.edx >> 24 & 1 == 0 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: the request takes two integers and changes only what this process may use.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Loads the tile shapes on this thread if it has not yet: palette 1, all eight tiles 16 rows
/// of 64 bytes.
///
/// # Safety
/// `enabled()` must have held.
#[cfg(target_arch = "x86_64")]
unsafe fn configure() {
    if CONFIGURED.with(Cell::get) {
        return;
    }
    #[repr(C, align(64))]
    struct Config([u8; 64]);
    let mut cfg = Config([0; 64]);
    cfg.0[0] = 1;
    for t in 0..8 {
        cfg.0[16 + 2 * t] = 64;
        cfg.0[48 + t] = 16;
    }
    std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    CONFIGURED.with(|c| c.set(true));
}

/// One block of C of up to 32 × 32 over `steps · PAIRS` k pairs: A's rows start `a_stride`
/// bytes apart at `a` (a row's words are its pairs), B's panel is at `b` (`NR` words per
/// pair). Both hold zeros in the pairs past the block's own.
///
/// # Safety
/// `enabled()` must have held; the strip must hold 32 rows (16 when `t.rows <= 16`) of
/// `steps · PAIRS` words and the panel `steps · PAIRS` pairs; the tile's last element of C
/// must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn kernel(steps: usize, a: *const u32, a_stride: usize, b: *const u32, t: Tile) {
    use std::arch::asm;
    use std::arch::x86_64::*;
    configure();
    for i in 0..t.rows {
        _mm_prefetch::<_MM_HINT_T0>(t.c.add(i * t.rs).cast());
        if t.cols > 16 {
            _mm_prefetch::<_MM_HINT_T0>(t.c.add(i * t.rs + 16).cast());
        }
    }
    let b_stride = NR * 4;
    let two = t.rows > 16;
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    for s in 0..steps {
        let a0 = a.add(s * PAIRS);
        let b0 = b.add(s * PAIRS * NR);
        asm!(
            "tileloadd tmm4, [{a} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            a = in(reg) a0,
            sa = in(reg) a_stride,
            b = in(reg) b0,
            b1 = in(reg) b0.add(16),
            sb = in(reg) b_stride,
            options(nostack, readonly)
        );
        if two {
            asm!(
                "tileloadd tmm5, [{a} + {sa}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a = in(reg) a0.cast::<u8>().add(16 * a_stride),
                sa = in(reg) a_stride,
                options(nostack, readonly)
            );
        }
    }
    // The four tiles of sums, as a 32 × 32 block of rows 128 bytes long.
    #[repr(C, align(64))]
    struct Sums([[f32; 32]; 32]);
    let mut sums = std::mem::MaybeUninit::<Sums>::uninit();
    let at = sums.as_mut_ptr().cast::<f32>();
    asm!(
        "tilestored [{c0} + {s}*1], tmm0",
        "tilestored [{c1} + {s}*1], tmm1",
        c0 = in(reg) at,
        c1 = in(reg) at.add(16),
        s = in(reg) 128usize,
        options(nostack)
    );
    if two {
        asm!(
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c2 = in(reg) at.add(16 * 32),
            c3 = in(reg) at.add(16 * 32 + 16),
            s = in(reg) 128usize,
            options(nostack)
        );
    }
    // Only the rows the tiles wrote are read (`two` holds when there are more than 16).
    for i in 0..t.rows {
        for h in 0..2 {
            store_row(&t, i, h, _mm512_loadu_ps(at.add(32 * i + 16 * h)));
        }
    }
}
