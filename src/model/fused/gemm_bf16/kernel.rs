//! The microkernel: one `MR × NR` tile of C in 24 AVX-512 registers, two `vdpbf16ps` per row
//! and k pair.

use super::pack::mask16;
use super::{MR, NR};

/// Where a microkernel's `MR × NR` tile goes: `c (+)= β · tile` for its first `rows × cols`.
pub(super) struct Tile {
    pub(super) c: *mut f32,
    pub(super) rs: usize,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) beta: f32,
    pub(super) overwrite: bool,
    /// With `overwrite`, the row that starts every row of the tile (its first `cols`
    /// values), or null: `c = β · tile + bias`, as if `c` had held the bias rows.
    pub(super) bias: *const f32,
}

/// One `MR × NR` tile over `pairs` k pairs. Row `i`'s word of pair `p` is at
/// `a[i · ROW + p · PAIR]` (the strip's `Layout`), B's 32 words of pair `p` at `b[p · NR]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn kernel<const ROW: usize, const PAIR: usize>(
    pairs: usize,
    a: *const u32,
    b: *const u32,
    t: Tile,
) {
    use std::arch::x86_64::*;
    // The tile of C is read (or written) only after the last pair. Asking for its lines now
    // overlaps their misses with the products: a block of C rows wider than L2 (the FFN's
    // 2,048 columns) or one read back per k block would otherwise stall every tile's stores
    // (large shape ×1.10–1.17).
    for i in 0..t.rows {
        _mm_prefetch::<_MM_HINT_T0>(t.c.add(i * t.rs).cast());
        if t.cols > 16 {
            _mm_prefetch::<_MM_HINT_T0>(t.c.add(i * t.rs + 16).cast());
        }
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..pairs {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
        for (i, row) in acc.iter_mut().enumerate() {
            let w = *a.add(i * ROW + p * PAIR) as i32;
            let w: __m512bh = std::mem::transmute(_mm512_set1_epi32(w));
            row[0] = _mm512_dpbf16_ps(row[0], w, b0);
            row[1] = _mm512_dpbf16_ps(row[1], w, b1);
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.rows) {
        for (h, v) in row.iter().enumerate() {
            store_row(&t, i, h, *v);
        }
    }
}

/// Stores `v`, the sums of columns `16 h ..` of the tile's row `i`, as the tile says: `β v`
/// over what C held (or over the bias, or over nothing), only the tile's columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn store_row(t: &Tile, i: usize, h: usize, v: std::arch::x86_64::__m512) {
    use std::arch::x86_64::*;
    let beta = _mm512_set1_ps(t.beta);
    let mask = mask16(t.cols.saturating_sub(16 * h));
    let at = t.c.add(i * t.rs + 16 * h);
    let out = if !t.overwrite {
        _mm512_fmadd_ps(beta, v, _mm512_maskz_loadu_ps(mask, at))
    } else if t.bias.is_null() {
        _mm512_mul_ps(beta, v)
    } else {
        _mm512_fmadd_ps(
            beta,
            v,
            _mm512_maskz_loadu_ps(mask, t.bias.wrapping_add(16 * h)),
        )
    };
    _mm512_mask_storeu_ps(at, mask, out);
}
