//! Packing: operands laid out as the microkernel reads them, each k pair `[even, odd]` of
//! bf16 values in one 32-bit word. f32 operands are rounded here (`vcvtne2ps2bf16`); bf16
//! ones (`gemm::Kept`) were rounded before and are copied. Every layout is a load in
//! registers plus at most an interleave or a 16 × 16 transpose, never a scalar loop, except
//! for views with neither stride 1, which the model does not use.

use super::super::gemm::Operand;
use super::to_bf16;

/// The `min(left, 32)` consecutive values from index `at`, as 16 words of pairs (zero past
/// `left`; nothing past it is read).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn words(src: &Operand, at: usize, left: usize) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    match src {
        Operand::F32(v) => pair_words(v.data.as_ptr().wrapping_add(at), left),
        Operand::Bf16(v) => {
            _mm512_maskz_loadu_epi16(mask32(left), v.data.as_ptr().wrapping_add(at).cast())
        }
    }
}

/// The lanes `m` of the 16 values from index `even` in the low half and, if there is one, of
/// the 16 from `odd` in the high half, as bf16 bits (zero elsewhere).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn halves(
    src: &Operand,
    even: usize,
    odd: Option<usize>,
    m: u16,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    match src {
        Operand::F32(v) => {
            let p = v.data.as_ptr();
            let lo = _mm512_maskz_loadu_ps(m, p.wrapping_add(even));
            let hi = match odd {
                Some(odd) => _mm512_maskz_loadu_ps(m, p.wrapping_add(odd)),
                None => _mm512_setzero_ps(),
            };
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
        }
        Operand::Bf16(v) => {
            let p = v.data.as_ptr();
            let lo = _mm512_maskz_loadu_epi16(m as u32, p.wrapping_add(even).cast());
            let hi = match odd {
                Some(odd) => _mm512_maskz_loadu_epi16(m as u32, p.wrapping_add(odd).cast()),
                None => _mm512_setzero_si512(),
            };
            _mm512_inserti64x4::<1>(lo, _mm512_castsi512_si256(hi))
        }
    }
}

/// The bf16 bits of the element at index `at`.
fn bits(src: &Operand, at: usize) -> u16 {
    match src {
        Operand::F32(v) => to_bf16(v.data[at]),
        Operand::Bf16(v) => v.data[at],
    }
}

/// Packs rows `r0 .. r0 + lanes` of `src` (contiguous rows: `src.cs == 1`), columns
/// `k0 .. k0 + kc`, row by row: word `l · row + p` holds row `r0 + l`'s columns `k0 + 2p`
/// (low half) and `k0 + 2p + 1` (high half; zero past `kc`). 32 columns convert to 16 words
/// in one instruction, in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_row_major(
    out: &mut [u32],
    src: Operand,
    (r0, lanes): (usize, usize),
    row_len: usize,
    (k0, kc): (usize, usize),
) {
    use std::arch::x86_64::*;
    assert!(src.dims().3 == 1 && out.len() >= lanes * row_len && kc.div_ceil(2) <= row_len);
    for l in 0..lanes {
        let row = src.at(r0 + l, k0);
        for c0 in (0..kc).step_by(32) {
            let left = kc - c0;
            let words = words(&src, row + c0, left);
            let dst = out.as_mut_ptr().add(l * row_len + c0 / 2);
            _mm512_mask_storeu_epi32(dst.cast(), mask16(left.div_ceil(2)), words);
        }
    }
}

/// `out[i]` = `x[i]` rounded to bf16 bits, 32 at a time; `out` has room for `x.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn round_into(x: &[f32], out: *mut u16) {
    use std::arch::x86_64::*;
    for c0 in (0..x.len()).step_by(32) {
        let left = x.len() - c0;
        let w = pair_words(x.as_ptr().add(c0), left);
        _mm512_mask_storeu_epi16(out.add(c0).cast(), mask32(left), w);
    }
}

/// The first `min(left, 32)` floats at `from`, rounded to bf16, as 16 words of consecutive
/// pairs (`[even, odd]`, zero past `left`): one conversion instruction. Floats past `left`
/// are not read (masked loads).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_words(from: *const f32, left: usize) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let lo = _mm512_maskz_loadu_ps(mask16(left), from);
    let hi = _mm512_maskz_loadu_ps(mask16(left.saturating_sub(16)), from.wrapping_add(16));
    std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
}

/// Packs rows `r0 .. r0 + lanes` of `src`, columns `k0 .. k0 + kc`, pair by pair, into
/// blocks of `width` lanes `block` words apart (a product's strips of A, or panels of B): word
/// `b · block + p · width + l` holds row `r0 + b · width + l`'s columns `k0 + 2p` (low half)
/// and `k0 + 2p + 1` (high half; zero past `kc`); lanes past the last row keep what they held
/// (padding).
///
/// When the lanes are side by side (`rs == 1`, a matrix read as its transpose) the pairs go
/// outermost: each of the two source rows of a pair is then read once, from end to end, for
/// all the blocks, and the rows `AHEAD` pairs on are asked for in a few requests. The
/// prefetch is what paid (the loads held the packing's time); the order alone measured
/// the same as block by block, which read each row a few dozen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_pair_major(
    out: &mut [u32],
    src: Operand,
    (r0, lanes): (usize, usize),
    width: usize,
    block: usize,
    (k0, kc): (usize, usize),
) {
    let pairs = kc.div_ceil(2);
    let blocks = lanes.div_ceil(width);
    assert!(block >= pairs * width && out.len() >= (blocks - 1) * block + pairs * width);
    let (_, _, rs, cs) = src.dims();
    if rs != 1 {
        for b in 0..blocks {
            let lanes = (r0 + b * width, width.min(lanes - b * width));
            pack_block(&mut out[b * block..], src, lanes, width, (k0, kc));
        }
        return;
    }
    for p in 0..pairs {
        let even = src.at(r0, k0 + 2 * p);
        let odd = (2 * p + 1 < kc).then_some(even + cs);
        if 2 * (p + AHEAD) + 1 < kc {
            let ahead = even + 2 * AHEAD * cs;
            prefetch(&src, ahead, lanes);
            prefetch(&src, ahead + cs, lanes);
        }
        for b in 0..blocks {
            let l0 = b * width;
            let dst = out.as_mut_ptr().add(b * block + p * width);
            let rows = (even + l0, odd.map(|o| o + l0));
            interleave(&src, rows, width.min(lanes - l0), dst);
        }
    }
}

/// How many pairs ahead `pack_pair_major` asks for the rows it will read: each pair's rows lie
/// a row stride apart (kilobytes), a pattern the hardware prefetcher does not follow.
const AHEAD: usize = 8;

/// Asks for the cache lines of `len` elements of `src` from index `at`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn prefetch(src: &Operand, at: usize, len: usize) {
    use std::arch::x86_64::*;
    let (p, bytes) = match src {
        Operand::F32(v) => (v.data.as_ptr().wrapping_add(at).cast::<i8>(), 4 * len),
        Operand::Bf16(v) => (v.data.as_ptr().wrapping_add(at).cast::<i8>(), 2 * len),
    };
    for off in (0..bytes + 63).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off.min(bytes - 1)));
    }
}

/// Writes `lanes` words at `dst`: lane `l` holds element `even + l` (low half) and `odd + l`
/// (high half; zero without `odd`) of `src`, rounded to bf16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave(
    src: &Operand,
    (even, odd): (usize, Option<usize>),
    lanes: usize,
    dst: *mut u32,
) {
    use std::arch::x86_64::*;
    if let (Operand::Bf16(v), 17..=32) = (src, lanes) {
        // Up to 32 lanes of bf16 bits: two loads, and two permutes that pair them word by
        // word.
        let p = v.data.as_ptr();
        let m = mask32(lanes);
        let e = _mm512_maskz_loadu_epi16(m, p.wrapping_add(even).cast());
        let o = match odd {
            Some(odd) => _mm512_maskz_loadu_epi16(m, p.wrapping_add(odd).cast()),
            None => _mm512_setzero_si512(),
        };
        let lo = _mm512_permutex2var_epi16(e, pairing(0, 32), o);
        let hi = _mm512_permutex2var_epi16(e, pairing(16, 32), o);
        _mm512_mask_storeu_epi32(dst.cast(), mask16(lanes), lo);
        _mm512_mask_storeu_epi32(dst.add(16).cast(), mask16(lanes - 16), hi);
        return;
    }
    // 16 lanes at a time: the two rows' lanes side by side in one register, then paired.
    for l0 in (0..lanes).step_by(16) {
        let m = mask16(lanes - l0);
        let v = halves(src, even + l0, odd.map(|o| o + l0), m);
        let v = _mm512_permutexvar_epi16(pairing(0, 16), v);
        _mm512_mask_storeu_epi32(dst.add(l0).cast(), m, v);
    }
}

/// Permute indices that make word `j` of 16 from halfwords `from + j` (low half) and
/// `second + from + j` (high half): the second row's lanes begin at `second`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pairing(from: i16, second: i16) -> std::arch::x86_64::__m512i {
    let mut idx = [0i16; 32];
    for (j, w) in idx.chunks_exact_mut(2).enumerate() {
        w[0] = from + j as i16;
        w[1] = second + from + j as i16;
    }
    std::mem::transmute(idx)
}

/// `pack_pair_major` for one block of at most `width` lanes that are not side by side: a
/// lane's pairs are (`cs == 1`: 16 × 16 transposes in registers), or neither is (element by
/// element; the model has no such views).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_block(
    out: &mut [u32],
    src: Operand,
    (r0, lanes): (usize, usize),
    width: usize,
    (k0, kc): (usize, usize),
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    let (_, _, _, cs) = src.dims();
    let at = |r: usize, kk: usize| src.at(r, kk);
    if cs == 1 {
        // A lane's pairs are side by side: convert 16 lanes × 16 pairs into registers (lane
        // by lane) and transpose them to pair by pair.
        for l0 in (0..lanes).step_by(16) {
            let ln = 16.min(lanes - l0);
            for c0 in (0..kc).step_by(32) {
                let left = kc - c0;
                let mut r = [_mm512_setzero_si512(); 16];
                for (l, reg) in r.iter_mut().enumerate().take(ln) {
                    *reg = words(&src, at(r0 + l0 + l, k0) + c0, left);
                }
                crate::simd::transpose16(&mut r);
                for (q, reg) in r.iter().enumerate().take(left.div_ceil(2).min(16)) {
                    let dst = out.as_mut_ptr().add((c0 / 2 + q) * width + l0);
                    _mm512_mask_storeu_epi32(dst.cast(), mask16(ln), *reg);
                }
            }
        }
    } else {
        for p in 0..pairs {
            for l in 0..lanes {
                let even = bits(&src, at(r0 + l, k0 + 2 * p)) as u32;
                let odd = if 2 * p + 1 < kc {
                    bits(&src, at(r0 + l, k0 + 2 * p + 1)) as u32
                } else {
                    0
                };
                out[p * width + l] = even | odd << 16;
            }
        }
    }
}

/// The first `n` of 32 lanes.
#[cfg(target_arch = "x86_64")]
fn mask32(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// The first `n` of 16 lanes.
#[cfg(target_arch = "x86_64")]
pub(super) fn mask16(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// Packs rows `r0 .. r0 + lanes` of `src`, columns `k0 .. k0 + kc`, row by row (word
/// `l · row + p`, as `pack_row_major`) from any layout, with the words from `kc`'s pairs up to
/// `padded` zero: AMX's strips, whose tiles always span 16 pairs. A source whose lanes are
/// side by side (`rs == 1`, a matrix read as its transpose) goes through 16 × 16 transposes:
/// 16 pairs of 16 lanes, each pair's lanes one register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_rows_padded(
    out: &mut [u32],
    src: Operand,
    (r0, lanes): (usize, usize),
    row: usize,
    (k0, kc): (usize, usize),
    padded: usize,
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    assert!(padded >= pairs && row >= padded && out.len() >= lanes * row);
    let (_, _, rs, cs) = src.dims();
    if cs == 1 {
        pack_row_major(out, src, (r0, lanes), row, (k0, kc));
    } else if rs == 1 {
        for p0 in (0..pairs).step_by(16) {
            for l0 in (0..lanes).step_by(16) {
                let ln = 16.min(lanes - l0);
                let mut r = [_mm512_setzero_si512(); 16];
                for (q, reg) in r.iter_mut().enumerate().take(16.min(pairs - p0)) {
                    let k = k0 + 2 * (p0 + q);
                    let even = src.at(r0 + l0, k);
                    let odd = (k + 1 < k0 + kc).then_some(even + cs);
                    let v = halves(&src, even, odd, mask16(ln));
                    *reg = _mm512_permutexvar_epi16(pairing(0, 16), v);
                }
                crate::simd::transpose16(&mut r);
                for (l, reg) in r.iter().enumerate().take(ln) {
                    let dst = out.as_mut_ptr().add((l0 + l) * row + p0);
                    _mm512_mask_storeu_epi32(dst.cast(), mask16(pairs - p0), *reg);
                }
            }
        }
    } else {
        for l in 0..lanes {
            for p in 0..pairs {
                let even = bits(&src, src.at(r0 + l, k0 + 2 * p)) as u32;
                let odd = if 2 * p + 1 < kc {
                    bits(&src, src.at(r0 + l, k0 + 2 * p + 1)) as u32
                } else {
                    0
                };
                out[l * row + p] = even | odd << 16;
            }
        }
    }
    for l in 0..lanes {
        out[l * row + pairs..l * row + padded].fill(0);
    }
}
