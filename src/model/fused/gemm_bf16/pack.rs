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

/// Packs rows `r0 .. r0 + lanes` of `src`, columns `k0 .. k0 + kc`, pair by pair: word
/// `p · width + l` holds row `r0 + l`'s columns `k0 + 2p` (low half) and `k0 + 2p + 1` (high
/// half; zero past `kc`); lanes past `lanes` keep what they held (padding).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_pair_major(
    out: &mut [u32],
    src: Operand,
    (r0, lanes): (usize, usize),
    width: usize,
    (k0, kc): (usize, usize),
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    assert!(out.len() >= pairs * width && lanes <= width);
    let (_, _, rs, cs) = src.dims();
    let at = |r: usize, kk: usize| src.at(r, kk);
    if rs == 1 {
        // The lanes are side by side: per pair, convert the two columns' lanes and
        // interleave them, 16 lanes at a time.
        let interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        for p in 0..pairs {
            let even = at(r0, k0 + 2 * p);
            let has_odd = 2 * p + 1 < kc;
            for l0 in (0..lanes).step_by(16) {
                let m = mask16(lanes - l0);
                let odd = has_odd.then_some(even + cs + l0);
                let v = halves(&src, even + l0, odd, m);
                let v = _mm512_permutexvar_epi16(interleave, v);
                let dst = out.as_mut_ptr().add(p * width + l0);
                _mm512_mask_storeu_epi32(dst.cast(), m, v);
            }
        }
    } else if cs == 1 {
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
