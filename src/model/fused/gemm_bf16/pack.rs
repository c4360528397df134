//! Packing: f32 operands rounded to bf16 and laid out as the microkernel reads them, each
//! k pair `[even, odd]` in one 32-bit word. Every layout is a conversion in registers
//! (`vcvtne2ps2bf16`) plus at most an interleave or a 16 × 16 transpose, never a scalar loop,
//! except for views with neither stride 1, which the model does not use.

use super::super::gemm::View;
use super::to_bf16;

/// Packs rows `r0 .. r0 + lanes` of `src` (contiguous rows: `src.cs == 1`), columns
/// `k0 .. k0 + kc`, row by row: word `l · row + p` holds row `r0 + l`'s columns `k0 + 2p`
/// (low half) and `k0 + 2p + 1` (high half; zero past `kc`). 32 columns convert to 16 words
/// in one instruction, in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_row_major(
    out: &mut [u32],
    src: View,
    (r0, lanes): (usize, usize),
    row_len: usize,
    (k0, kc): (usize, usize),
) {
    use std::arch::x86_64::*;
    assert!(src.cs == 1 && out.len() >= lanes * row_len && kc.div_ceil(2) <= row_len);
    for l in 0..lanes {
        let row = src.data.as_ptr().add(src.offset + (r0 + l) * src.rs + k0);
        for c0 in (0..kc).step_by(32) {
            let left = kc - c0;
            let words = pair_words(row.wrapping_add(c0), left);
            let dst = out.as_mut_ptr().add(l * row_len + c0 / 2);
            _mm512_mask_storeu_epi32(dst.cast(), mask16(left.div_ceil(2)), words);
        }
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

/// Packs rows `r0 .. r0 + lanes` of `src`, columns `k0 .. k0 + kc`, pair by pair: word
/// `p · width + l` holds row `r0 + l`'s columns `k0 + 2p` (low half) and `k0 + 2p + 1` (high
/// half; zero past `kc`); lanes past `lanes` keep what they held (padding).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_pair_major(
    out: &mut [u32],
    src: View,
    (r0, lanes): (usize, usize),
    width: usize,
    (k0, kc): (usize, usize),
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    assert!(out.len() >= pairs * width && lanes <= width);
    let base = src.data.as_ptr();
    let at = |r: usize, kk: usize| src.offset + r * src.rs + kk * src.cs;
    if src.rs == 1 {
        // The lanes are side by side: per pair, convert the two columns' lanes and
        // interleave them, 16 lanes at a time.
        let interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        for p in 0..pairs {
            let even = base.add(at(r0, k0 + 2 * p));
            let has_odd = 2 * p + 1 < kc;
            for l0 in (0..lanes).step_by(16) {
                let m = mask16(lanes - l0);
                let lo = _mm512_maskz_loadu_ps(m, even.wrapping_add(l0));
                let hi = if has_odd {
                    _mm512_maskz_loadu_ps(m, even.wrapping_add(src.cs + l0))
                } else {
                    _mm512_setzero_ps()
                };
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let v = _mm512_permutexvar_epi16(interleave, v);
                let dst = out.as_mut_ptr().add(p * width + l0);
                _mm512_mask_storeu_epi32(dst.cast(), m, v);
            }
        }
    } else if src.cs == 1 {
        // A lane's pairs are side by side: convert 16 lanes × 16 pairs into registers (lane
        // by lane) and transpose them to pair by pair.
        for l0 in (0..lanes).step_by(16) {
            let ln = 16.min(lanes - l0);
            for c0 in (0..kc).step_by(32) {
                let left = kc - c0;
                let mut r = [_mm512_setzero_si512(); 16];
                for (l, reg) in r.iter_mut().enumerate().take(ln) {
                    let row = base.add(at(r0 + l0 + l, k0));
                    *reg = pair_words(row.wrapping_add(c0), left);
                }
                transpose16(&mut r);
                for (q, reg) in r.iter().enumerate().take(left.div_ceil(2).min(16)) {
                    let dst = out.as_mut_ptr().add((c0 / 2 + q) * width + l0);
                    _mm512_mask_storeu_epi32(dst.cast(), mask16(ln), *reg);
                }
            }
        }
    } else {
        for p in 0..pairs {
            for l in 0..lanes {
                let even = to_bf16(src.data[at(r0 + l, k0 + 2 * p)]) as u32;
                let odd = if 2 * p + 1 < kc {
                    to_bf16(src.data[at(r0 + l, k0 + 2 * p + 1)]) as u32
                } else {
                    0
                };
                out[p * width + l] = even | odd << 16;
            }
        }
    }
}

/// Transposes the 16 × 16 matrix of 32-bit words whose rows are `r`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: &mut [std::arch::x86_64::__m512i; 16]) {
    use std::arch::x86_64::*;
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for h in 0..2 {
        for i in 0..4 {
            let (x, y) = (r[8 * h + i], r[8 * h + 4 + i]);
            t[8 * h + i] = _mm512_shuffle_i32x4::<0x88>(x, y);
            t[8 * h + 4 + i] = _mm512_shuffle_i32x4::<0xdd>(x, y);
        }
    }
    for i in 0..8 {
        r[i] = _mm512_shuffle_i32x4::<0x88>(t[i], t[8 + i]);
        r[8 + i] = _mm512_shuffle_i32x4::<0xdd>(t[i], t[8 + i]);
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
