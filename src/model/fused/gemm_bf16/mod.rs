//! Matrix products with bf16 operands and f32 accumulation — what `training.precision =
//! "bf16"` means for the CPU's products, as PyTorch's autocast and oneDNN define it: each
//! operand is rounded to bf16 (round to nearest even, as `vcvtne2ps2bf16` does), every product
//! of two bf16 values is exact in f32, and the sums are f32. Outputs stay f32, so everything
//! after a product (LayerNorm, softmax, the loss, the optimiser) runs in f32.
//!
//! Two kernels: AMX's `tdpbf16ps` on tiles where the CPU has them (`amx.rs`: Intel's Xeons
//! since Sapphire Rapids, where it is six times the peak of the other), else AVX512-BF16's
//! `vdpbf16ps`, which adds two bf16 products into each f32 lane: twice the multiply-adds of
//! an f32 FMA per instruction on AMD's Zen 4/5 (on Intel's cores, one port runs it, and it
//! is no faster than f32). Both read the same packed panels of B. No well-kept Rust crate has a bf16
//! GEMM (`gemm` 0.19 does f16 and f32; a generic fallback elsewhere converts element by
//! element), so this is a small GotoBLAS-style driver of our own:
//!
//! - the k axis is cut into blocks of `KC`; per block, all of B is packed into panels of `NR`
//!   columns with the two values of each k pair side by side (`[k even, k odd]` as one
//!   32-bit word), pair by pair, and A, per block of rows, into
//!   strips of `MR` rows of such words — row by row when A's rows are contiguous, pair by pair
//!   when its columns are, so that packing is a conversion and never a transpose (`Layout`),
//!   or not at all when A is bf16 rows an op kept (`gemm::Kept`) at a row stride the kernel
//!   reads (its full strips are read in place: packing them would be a copy);
//!   only B read as a transpose (`x Wᵀ`) goes through 16 × 16 register transposes. Operands
//!   read as transposes (`gᵀ x`: both) are packed a pair of source rows at a time for all
//!   strips or panels, the rows asked for a few pairs ahead (`pack_pair_major`). B is
//!   not cut into column blocks, so each block of A is packed once per k block (with blocks
//!   of 256 columns, the FFN's 1,024-column products packed A four times and ran 25–40 %
//!   slower);
//! - the microkernel keeps an `MR × NR` tile of C in 24 registers and, per k pair, loads two
//!   vectors of B and broadcasts one word of A per row;
//! - blocks of rows go to rayon's threads when `parallel`; every element of C is summed in the
//!   same order whatever the thread count (k blocks in order, pairs in order), so runs stay
//!   bit-identical and a resumed run equals an uninterrupted one.
//!
//! `reference` is the same arithmetic written plainly; `tests/bf16.rs` checks the kernel
//! against it and against f32 within bf16's tolerance.

mod amx;
mod kernel;
mod pack;
mod round;

use super::gemm::{Into, Operand};
use std::mem::MaybeUninit;

pub use amx::without_amx;
#[cfg(target_arch = "x86_64")]
use kernel::{kernel, Tile};
#[cfg(target_arch = "x86_64")]
use pack::{pack_pair_major, pack_row_major, pack_rows_padded};
#[cfg(target_arch = "x86_64")]
pub use round::made_from_product;
pub use round::{round_all, round_visited, rounded, to_bf16};

/// Rows of a C tile (and of a packed A strip).
const MR: usize = 12;
/// Columns of a C tile (and of a packed B panel): two 16-lane vectors.
const NR: usize = 32;
/// Length of a block of the k axis (even, so that pairs never straddle blocks).
const KC: usize = 512;
/// Most rows of a packed block of A.
const MC: usize = 192;

/// Whether this CPU has the instructions (AVX512-BF16, with AVX512-F and -BW for the packing).
pub fn native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel that bf16 products started on this thread run on: `amx` (tiles) or
/// `avx512-bf16` (`vdpbf16ps`).
pub fn kernel_name() -> &'static str {
    if amx::enabled() {
        "amx"
    } else {
        "avx512-bf16"
    }
}

/// Element `(i, j)` of an operand, as the bf16 value a product reads.
fn value(v: &Operand, i: usize, j: usize) -> f32 {
    match v {
        Operand::F32(d) => rounded(d.data[v.at(i, j)]),
        Operand::Bf16(d) => half::bf16::from_bits(d.data[v.at(i, j)]).to_f32(),
    }
}

/// `dst (+)= β · a b` with bf16 operands, computed plainly: the definition the kernel is
/// checked against (products of rounded operands, summed in f32 in k order).
#[allow(clippy::too_many_arguments)]
pub fn reference<'a, 'b>(
    dst: &mut [f32],
    offset: usize,
    rs: usize,
    a: impl std::convert::Into<Operand<'a>>,
    b: impl std::convert::Into<Operand<'b>>,
    beta: f32,
    into: Into,
) {
    let (a, b) = (a.into(), b.into());
    let ((m, kk, _, _), (_, n, _, _)) = (a.dims(), b.dims());
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for k in 0..kk {
                acc += value(&a, i, k) * value(&b, k, j);
            }
            let c = &mut dst[offset + i * rs + j];
            *c = if into == Into::Accumulate { *c } else { 0.0 } + beta * acc;
        }
    }
}

/// How a strip of A holds its words: pair by pair (`p · MR + i`) or row by row with a row
/// length fixed per product (`i · row + p`, `row` one of `ROW_WORDS`), packed or, for bf16
/// rows whose stride is such a length, in place; the microkernel reads either with constant
/// offsets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    PairMajor,
    RowMajor(usize),
}

/// Words of a row of a row-major packed strip: the pairs of a full k block.
const KCP: usize = KC / 2;

/// Work on a finished row segment of a tile: `(index of its first element, the segment)`.
pub type Finish<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// What a product's tiles start from and what becomes of each once it is done: the bias
/// added as the first k block is stored (so that its rows are never written out first), and
/// work on the finished tile while it is in cache (`gemm::Kept::made_from_product`).
#[derive(Clone, Copy, Default)]
pub struct Ends<'a> {
    /// Added to every row at the first k block, in place of what `dst` held: only with
    /// `Into::Overwrite`.
    pub bias: Option<&'a [f32]>,
    /// Called on each row segment of each tile after its last k block, with the index of its
    /// first element (from `offset`).
    pub finish: Option<&'a Finish<'a>>,
}

/// `dst (+)= β · a b` (`+ bias`), as `gemm::matmul`; with `Into::Overwrite`, `dst` need not
/// hold values: every element of the product is written before it is read.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub fn product(
    dst: &mut [MaybeUninit<f32>],
    offset: usize,
    rs: usize,
    a: Operand,
    b: Operand,
    beta: f32,
    into: Into,
    ends: Ends,
    parallel: bool,
) {
    use rayon::prelude::*;
    let ((m, k, _, a_cs), (_, n, _, _)) = (a.dims(), b.dims());
    assert!(rs >= n, "rows of the product overlap");
    assert!(
        m > 0 && n > 0 && offset + (m - 1) * rs + n <= dst.len(),
        "product out of bounds"
    );
    if let Some(bias) = ends.bias {
        assert!(
            into == Into::Overwrite,
            "a bias replaces what the product overwrites"
        );
        assert_eq!(bias.len(), n, "bias against the product's columns");
    }
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    // AMX tiles where the CPU has them, else `vdpbf16ps`: strips of 32 rows or 12, and k
    // blocks whose pairs are padded (with zeros) to the 16 of a tile, or not at all.
    let amx = amx::enabled();
    let (mr, step) = if amx { (amx::MR, amx::PAIRS) } else { (MR, 1) };
    // Row blocks of at most `MC` rows, as many as a multiple of the threads (so that no
    // thread waits on a last, lone block), each a whole number of strips.
    let blocks = m.div_ceil(MC).div_ceil(threads) * threads;
    let mc = m.div_ceil(blocks).div_ceil(mr) * mr;
    // A row-major strip's rows are as long as the (padded) pairs of the longest k block,
    // for `vdpbf16ps` rounded up to one of its kernel's row lengths.
    let longest = KC.min(k).div_ceil(2).next_multiple_of(step);
    let row = match longest {
        _ if amx => longest,
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => KCP,
    };
    // A held as bf16 rows that the kernel can read where they lie is, strip by full strip:
    // its packing would be a copy. AMX's strips are always row by row.
    let in_place = in_place_rows(&a, k, amx);
    let layout = match (in_place, a_cs) {
        _ if amx => Layout::RowMajor(row),
        (Some(bytes), _) => Layout::RowMajor(bytes / 4),
        (_, 1) => Layout::RowMajor(row),
        _ => Layout::PairMajor,
    };
    let blocks = m.div_ceil(mc);
    let c = &mut dst[offset..];
    with_buffer(&PACKED_B, |packed_b| {
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let pairs = kc.div_ceil(2);
            let padded = pairs.next_multiple_of(step);
            let panel = padded * NR;
            let packed_b = reserve(packed_b, n.div_ceil(NR) * panel);
            // B's columns are the lanes of its panels: the rows of Bᵀ. Each thread packs a
            // run of whole panels.
            let bt = b.t();
            let panels = n.div_ceil(NR);
            let run = panels.div_ceil(threads);
            let pack_run = |(r, out): (usize, &mut [u32])| {
                let j0 = r * run * NR;
                let lanes = (j0, (run * NR).min(n - j0));
                // SAFETY: `native()` was checked by the caller; the view is in bounds.
                unsafe { pack_pair_major(out, bt, lanes, NR, panel, (pc, kc)) }
                for panel in out.chunks_mut(panel) {
                    panel[pairs * NR..].fill(0);
                }
            };
            if parallel {
                packed_b
                    .par_chunks_mut(run * panel)
                    .enumerate()
                    .for_each(pack_run);
            } else {
                packed_b
                    .chunks_mut(run * panel)
                    .enumerate()
                    .for_each(pack_run);
            }
            let packed_b = &*packed_b;
            let overwrite = pc == 0 && into == Into::Overwrite;
            let last = pc + kc == k;
            let block = |(blk, rows): (usize, &mut [MaybeUninit<f32>])| {
                let i0 = blk * mc;
                let mr_all = mc.min(m - i0);
                let strip = match layout {
                    Layout::PairMajor => pairs * MR,
                    Layout::RowMajor(row) => row * mr,
                };
                with_buffer(&PACKED_A, |packed_a| {
                    let packed_a = reserve(packed_a, mr_all.div_ceil(mr) * strip);
                    // Where each strip's words are read, in A itself or in `packed_a`, and
                    // how many bytes apart its rows are.
                    let mut strips = [(std::ptr::null::<u32>(), 0); MC / MR];
                    if layout == Layout::PairMajor {
                        // All the block's strips at once, pair by pair (see `pack_pair_major`).
                        // SAFETY: `native()` was checked by the caller; the view is in bounds.
                        unsafe { pack_pair_major(packed_a, a, (i0, mr_all), MR, strip, (pc, kc)) }
                    }
                    for (s, out) in packed_a.chunks_mut(strip).enumerate() {
                        let r0 = i0 + s * mr;
                        let lanes = (r0, mr.min(m - r0));
                        strips[s] = (out.as_ptr(), 4 * row);
                        match (layout, in_place, a) {
                            (Layout::PairMajor, ..) => {}
                            (_, Some(bytes), Operand::Bf16(v)) if lanes.1 == mr => {
                                // SAFETY: `in_place_rows` checked that the strip's `padded`
                                // words per row lie inside the view and are 4-byte aligned.
                                let at = unsafe { v.data.as_ptr().add(v.offset + r0 * v.rs + pc) };
                                strips[s] = (at.cast(), bytes);
                            }
                            // SAFETY: `native()` was checked by the caller; the view is in
                            // bounds.
                            _ if amx => unsafe {
                                pack_rows_padded(out, a, lanes, row, (pc, kc), padded)
                            },
                            // SAFETY: `native()` was checked by the caller; the view is in
                            // bounds.
                            (Layout::RowMajor(row), ..) => unsafe {
                                pack_row_major(out, a, lanes, row, (pc, kc))
                            },
                        }
                    }
                    let strips = &strips[..mr_all.div_ceil(mr)];
                    for (p, bp) in packed_b.chunks(panel).enumerate() {
                        let j = p * NR;
                        let cols = NR.min(n - j);
                        for (s, &(ap, a_stride)) in strips.iter().enumerate() {
                            let r = s * mr;
                            let tile_rows = mr.min(mr_all - r);
                            let at = r * rs + j;
                            let need = at + (tile_rows - 1) * rs + cols;
                            assert!(need <= rows.len(), "tile out of bounds");
                            let bias = match ends.bias {
                                Some(b) if overwrite => b[j..].as_ptr(),
                                _ => std::ptr::null(),
                            };
                            let tile = Tile {
                                c: rows[at..].as_mut_ptr().cast(),
                                rs,
                                rows: tile_rows,
                                cols,
                                beta,
                                overwrite,
                                bias,
                            };
                            let bp = bp.as_ptr();
                            // SAFETY: the tile's last element is inside `rows` (checked
                            // above); the strips (packed or in place) and the packed panels
                            // hold `pairs` pairs of full strips and panels.
                            unsafe {
                                match layout {
                                    _ if amx => amx::kernel(padded / step, ap, a_stride, bp, tile),
                                    Layout::RowMajor(32) => kernel::<32, 1>(pairs, ap, bp, tile),
                                    Layout::RowMajor(64) => kernel::<64, 1>(pairs, ap, bp, tile),
                                    Layout::RowMajor(128) => kernel::<128, 1>(pairs, ap, bp, tile),
                                    Layout::RowMajor(256) => kernel::<256, 1>(pairs, ap, bp, tile),
                                    Layout::RowMajor(512) => kernel::<512, 1>(pairs, ap, bp, tile),
                                    Layout::RowMajor(1024) => {
                                        kernel::<1024, 1>(pairs, ap, bp, tile)
                                    }
                                    Layout::RowMajor(r) => unreachable!("row length {r}"),
                                    Layout::PairMajor => kernel::<1, MR>(pairs, ap, bp, tile),
                                }
                            }
                            if let (true, Some(finish)) = (last, ends.finish) {
                                for i in 0..tile_rows {
                                    let seg = &mut rows[at + i * rs..][..cols];
                                    // SAFETY: the kernel has just written the segment.
                                    let seg = unsafe { &mut *(seg as *mut [_] as *mut [f32]) };
                                    finish((i0 + r + i) * rs + j, seg);
                                }
                            }
                        }
                    }
                })
            };
            // Row blocks of C are disjoint slices: block `blk` starts at row `blk · mc`.
            if parallel && blocks > 1 {
                c.par_chunks_mut(mc * rs)
                    .take(blocks)
                    .enumerate()
                    .for_each(block);
            } else {
                c.chunks_mut(mc * rs)
                    .take(blocks)
                    .enumerate()
                    .for_each(block);
            }
        }
    })
}

/// The kernel's row lengths, in words.
const ROW_WORDS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// How many bytes apart A's rows lie if the kernel can read them in place: bf16 bits in
/// contiguous rows (so that a word is a k pair, as packed) and an even k (no pair half past a
/// row). `vdpbf16ps`'s kernel also needs word-aligned rows a kernel row length
/// (`ROW_WORDS`) apart; AMX's tiles take any stride, but whole tiles of 16 pairs, so k a
/// multiple of 32 (no padding in any k block), and are fast only from rows on cache lines.
fn in_place_rows(a: &Operand, k: usize, amx: bool) -> Option<usize> {
    let Operand::Bf16(v) = a else { return None };
    let fits = v.cs == 1 && v.rs >= k && k.is_multiple_of(2);
    if amx {
        // Rows on cache-line boundaries (a tile load straddling lines took four times as
        // long: packing such rows costs less).
        let lines = (v.data.as_ptr() as usize + 2 * v.offset).is_multiple_of(64)
            && (2 * v.rs).is_multiple_of(64);
        return (fits && lines && k.is_multiple_of(2 * amx::PAIRS)).then_some(2 * v.rs);
    }
    let aligned = (v.data.as_ptr() as usize + 2 * v.offset).is_multiple_of(4);
    let fits = fits && v.rs.is_multiple_of(2) && aligned;
    (fits && ROW_WORDS.contains(&(v.rs / 2))).then_some(2 * v.rs)
}

thread_local! {
    /// Packing buffers, kept per thread between products: a step runs thousands of small
    /// ones (attention's, per sequence and head), which would otherwise each allocate and
    /// zero-fill. Every word the kernel reads is written by the packing first; stale words
    /// lie only in padding lanes, whose results are never stored.
    static PACKED_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PACKED_B: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer, or a fresh one if it is in use (a product started
/// inside another on the same thread).
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<u32>>>,
    f: impl FnOnce(&mut Vec<u32>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// `len` words of `buf` from its first 64-byte boundary, `buf` grown (zero-filled) if it is
/// short: AMX's tile loads took four times as long from rows that straddle cache lines.
fn reserve(buf: &mut Vec<u32>, len: usize) -> &mut [u32] {
    if buf.len() < len + 15 {
        buf.resize(len + 15, 0);
    }
    let skip = buf.as_ptr().align_offset(64);
    &mut buf[skip..skip + len]
}
