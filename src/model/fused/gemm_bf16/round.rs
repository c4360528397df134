//! Rounding to bf16: the operands an op keeps (`gemm::Kept`), rounded once for every product
//! that reads them, and the values made from a product's tiles as the kernel finishes them.

use super::{native, pack, product, Ends, NR};
use crate::model::fused::gemm::{Into, Operand};

/// f32 → bf16 bits, rounding to nearest even (NaN stays NaN): what `vcvtne2ps2bf16` does.
pub fn to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// The value a bf16 operand stands for.
pub fn rounded(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// `x` rounded to bf16 bits, element by element, over rayon's threads for long slices: what
/// `gemm::Kept` holds. The same rounding as the packing's, so a product of rounded operands
/// equals the product of the f32 ones bit for bit.
pub fn round_all(x: &[f32]) -> Vec<u16> {
    const CHUNK: usize = 1 << 14;
    // SAFETY: `round_into` writes every element of its `out`.
    unsafe {
        crate::model::host::written(x.len(), CHUNK, |at, out| {
            round_into(&x[at..at + out.len()], out)
        })
    }
}

/// `values` rounded to bf16 bits block by block, each block right after `visit(start, block)`
/// has seen it (and may have changed it in place; `start` is its first index), while it is
/// still in cache, over rayon's threads; with what each visit returned, in block order
/// (`gemm::Kept::visited`).
pub fn round_visited<R: Send>(
    values: &mut [f32],
    block: usize,
    visit: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<u16>, Vec<R>) {
    use rayon::prelude::*;
    let len = values.len();
    let mut out: Vec<u16> = Vec::with_capacity(len);
    let seen = out.spare_capacity_mut()[..len]
        .par_chunks_mut(block)
        .zip(values.par_chunks_mut(block))
        .enumerate()
        .map(|(i, (o, b))| {
            let r = visit(i * block, b);
            round_into(b, o);
            r
        })
        .collect();
    // SAFETY: `round_into` wrote every one of the `len` elements.
    unsafe { out.set_len(len) };
    (out, seen)
}

/// `gemm::Kept::made_from_product` with bf16 products: `u = bias + a b` through `product`,
/// each finished row segment of a tile handed to `make` and the values it makes rounded,
/// both while the tile is in cache. Returns `u` as `make` left it, and the bits.
#[cfg(target_arch = "x86_64")]
pub fn made_from_product(
    a: Operand,
    b: Operand,
    bias: Option<&[f32]>,
    make: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> (Vec<f32>, Vec<u16>) {
    let ((m, ..), (_, n, ..)) = (a.dims(), b.dims());
    let (mut u, mut bits) = (Vec::with_capacity(m * n), Vec::<u16>::with_capacity(m * n));
    let out = Shared(bits.as_mut_ptr());
    let finish = |at: usize, seg: &mut [f32]| {
        let out = &out;
        let mut values = [0.0f32; NR];
        let values = &mut values[..seg.len()];
        make(at, values, seg);
        assert!(at + seg.len() <= m * n);
        // SAFETY: each segment of the product is finished once, and segments are disjoint
        // ranges inside the `m · n` bits allocated (checked above).
        let o = unsafe { std::slice::from_raw_parts_mut(out.0.add(at).cast(), seg.len()) };
        round_into(values, o);
    };
    let ends = Ends {
        bias,
        finish: Some(&finish),
    };
    let dst = &mut u.spare_capacity_mut()[..m * n];
    product(dst, 0, n, a, b, 1.0, Into::Overwrite, ends, true);
    // SAFETY: the overwriting product wrote every element of `u`, and finished (so rounded
    // into `bits`) every segment of it.
    unsafe {
        u.set_len(m * n);
        bits.set_len(m * n);
    }
    (u, bits)
}

/// A pointer that the tasks finishing disjoint segments of a product share.
struct Shared(*mut u16);
// SAFETY: the tasks write disjoint ranges through it (`made_from_product`).
unsafe impl Sync for Shared {}

/// Writes every element of `out`: `x` rounded.
fn round_into(x: &[f32], out: &mut [std::mem::MaybeUninit<u16>]) {
    assert_eq!(x.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if native() {
        // SAFETY: the instructions are present; the slices have equal lengths, and the
        // routine writes each element of `out` (plain stores, no reads).
        return unsafe { pack::round_into(x, out.as_mut_ptr().cast()) };
    }
    for (o, v) in out.iter_mut().zip(x) {
        o.write(to_bf16(*v));
    }
}
