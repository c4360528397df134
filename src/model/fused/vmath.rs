//! `exp` and the normal CDF as plain f32 arithmetic, and sums, dots and maxima in 16 fixed
//! lanes, so that the elementwise loops and row reductions of softmax, GELU, LayerNorm and the
//! cross-entropy vectorise.
//!
//! libm's `expf` and `erff` are calls: a loop that makes one per element (softmax, GELU and
//! its backward, the MLM cross-entropy) runs one element at a time, and those loops were a
//! sixth of a step at the small shape (`perf record`). These are branch-free (selects, not
//! jumps) and inline, so LLVM turns such a loop into SIMD; the slice kernels below are compiled
//! once per instruction set (`multiversion`) and pick the widest at run time. Every version
//! performs the same IEEE operations in the same order (Rust never contracts `a * b + c` into
//! an FMA), so results do not depend on the machine, only the speed does. The lane order of
//! the reductions is not the left-to-right order of a scalar loop, but it is fixed: the same
//! on every machine and thread count.
//!
//! Accuracy (checked in `tests/vmath.rs` against f64): `exp` within 2 ulp on [−87.3, 88];
//! `normal_cdf` within 1.4e-7 absolute (under 3 ulp of values near ½ and 1; libm's
//! `(1 + erff(x/√2))/2` rounds as coarsely there) and within 6e-6 relative down to Φ = 1e-30
//! (in the far tail the rounding of `x²` inside `e^(−x²/2)` dominates).

use multiversion::multiversion;

/// 1.5 · 2²³: adding and subtracting it rounds an f32 below 2²² to the nearest integer (ties
/// to even) with two exact IEEE operations, where `round()` would be a call at SSE2.
const ROUND: f32 = 12_582_912.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts (Cody and Waite): `n · LN2_HI` is exact for |n| ≤ 128, so `x − n·ln 2`
/// loses nothing to cancellation.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this `exp` is under f32's smallest normal number: the result is 0 (softmax's
/// masked scores land here).
const EXP_MIN: f32 = -87.336_54;
/// Above this `exp` returns +∞ (f32 overflows at 88.72; no caller gets near either).
const EXP_MAX: f32 = 88.0;

/// `eˣ` for f32: 2ⁿ · e^r with `n = round(x / ln 2)` and |r| ≤ ln 2 / 2, e^r by its Taylor
/// polynomial to degree 7 (truncation 5e-9, under the rounding of the sum). NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    // k = ROUND + n exactly, so n is also k's low mantissa bits: read it from there, as an
    // integer, rather than by `as i32` (a saturating cast that LLVM does one lane at a time).
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n ∈ [−126, 127]: 2ⁿ is a normal number built from its exponent bits.
    let n_bits = k.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let y = p * scale;
    let y = if x > EXP_MAX { f32::INFINITY } else { y };
    if x < EXP_MIN {
        0.0
    } else {
        y
    }
}

/// `erfc(a) · e^(a²)` (the scaled complementary error function, `erfcx`) as a polynomial in
/// `t − 1`, `t = 1 / (1 + a/2)`: smooth on `a ∈ [0, 10]` (from 1 at `a = 0` towards
/// `1/(a√π)`), so a least-squares fit of degree 10 on Chebyshev nodes of `t` holds it to
/// 2.6e-6 relative in f32 at worst, towards `a = 10`, and to 1.5e-7 for `a ≤ 1`: centred
/// there, where Φ is near ½ and its absolute error counts most, it is exactly its constant 1.
/// Fitted for pretext with mpmath (`tests/fixtures/fit_erfcx.py` prints these coefficients
/// and that error). The variable is Numerical Recipes' `erfcc`'s, but the exponential stays
/// outside the polynomial: `erfc(a) = e^(−a²) · p(t − 1)`, and `e^(−a²)` with `a = |x|/√2` is
/// `e^(−x²/2)`, which GELU's slope needs anyway — one `exp` a value for Φ and φ together
/// instead of two (GELU was the largest pass of a step outside the products).
const ERFCX: [f32; 11] = [
    1.0,
    2.256_757_5,
    1.743_211_9,
    0.274_359_52,
    -0.313_791_36,
    -0.017_694_127,
    0.062_035_177,
    -0.054_065_14,
    0.012_750_054,
    0.073_999_23,
    0.029_160_466,
];

/// `erfc(|z|) · e^(z²)` (`ERFCX`), with `|z|` capped at 10, where `erfc` is already 0 in f32,
/// to keep the polynomial on its fitted range.
#[inline(always)]
fn erfc_scaled(z: f32) -> f32 {
    let a = z.abs();
    let a = if a > 10.0 { 10.0 } else { a };
    let s = 1.0 / (1.0 + 0.5 * a) - 1.0;
    let mut p = ERFCX[10];
    for c in ERFCX[..10].iter().rev() {
        p = p * s + c;
    }
    p
}

/// `erfc(z)` for f32; NaN stays NaN.
#[inline(always)]
pub fn erfc(z: f32) -> f32 {
    erfc_given(z, exp(-(z * z)))
}

/// `erfc(z)` given `g = e^(−z²)`, however the caller computed it (`normal_cdf` has it as the
/// density's `e^(−x²/2)`).
#[inline(always)]
fn erfc_given(z: f32, g: f32) -> f32 {
    let e = erfc_scaled(z) * g;
    if z < 0.0 {
        2.0 - e
    } else {
        e
    }
}

/// Φ(x), the standard normal CDF, as `erfc(−x/√2) / 2` (no cancellation for negative x,
/// where `(1 + erf)/2` loses digits).
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    cdf_from_gauss(x, gauss(x))
}

/// `e^(−x²/2)`, the standard normal density without its `1/√(2π)`.
#[inline(always)]
fn gauss(x: f32) -> f32 {
    exp(-(x * x) * 0.5)
}

/// Φ(x) given `g = gauss(x)`: `erfc(−x/√2) / 2` with `e^(−x²/2)` for its `e^(−a²)`.
#[inline(always)]
fn cdf_from_gauss(x: f32, g: f32) -> f32 {
    0.5 * erfc_given(-x * std::f32::consts::FRAC_1_SQRT_2, g)
}

/// `1/√(2π)`, the peak of the standard normal density.
pub const INV_SQRT_2PI: f32 = 0.398_942_3;

/// GELU forward over a slice: `cdf ← Φ(x)`, `y ← x · Φ(x)` (Φ kept for the backward pass).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_forward(x: &[f32], y: &mut [f32], cdf: &mut [f32]) {
    for ((y, c), &v) in y.iter_mut().zip(cdf.iter_mut()).zip(x) {
        *c = normal_cdf(v);
        *y = v * *c;
    }
}

/// GELU backward over a slice: `dx += g · (Φ(x) + x · φ(x))`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_backward(g: &[f32], x: &[f32], cdf: &[f32], dx: &mut [f32]) {
    for (((d, &gi), &xi), &c) in dx.iter_mut().zip(g).zip(x).zip(cdf) {
        let pdf = gauss(xi) * INV_SQRT_2PI;
        *d += gi * (c + xi * pdf);
    }
}

/// GELU forward for training, in place: `y ← x · Φ(x)`, and `x ← Φ(x) + x · φ(x)`, GELU's
/// derivative as `gelu_backward` computes it. The slope is all the backward pass needs, so
/// the pre-activation's buffer holds it (nothing more is kept for the backward pass than
/// the pre-activation), and the backward pass is one multiply (`gelu_backward_slope`).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_forward_slope(x: &mut [f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (x, y) = (&mut x[..n], &mut y[..n]);
    let mut xs = x.chunks_exact_mut(BLOCK);
    let mut ys = y.chunks_exact_mut(BLOCK);
    for (xb, yb) in (&mut xs).zip(&mut ys) {
        let xb: &mut Block = xb.try_into().expect("a whole block");
        let yb: &mut Block = yb.try_into().expect("a whole block");
        gelu_slope_block(xb, yb);
    }
    for (x, y) in xs.into_remainder().iter_mut().zip(ys.into_remainder()) {
        let v = *x;
        let g = gauss(v);
        let c = cdf_from_gauss(v, g);
        *y = v * c;
        *x = c + v * (g * INV_SQRT_2PI);
    }
}

/// Values of `gelu_forward_slope`'s blocks: two 512-bit vectors (a tile's row).
const BLOCK: usize = 32;
type Block = [f32; BLOCK];

/// `f` on every lane of a block.
#[inline(always)]
fn each(a: &Block, f: impl Fn(f32) -> f32) -> Block {
    let mut o = [0.0; BLOCK];
    for i in 0..BLOCK {
        o[i] = f(a[i]);
    }
    o
}

/// `f` on every pair of lanes of two blocks.
#[inline(always)]
fn each2(a: &Block, b: &Block, f: impl Fn(f32, f32) -> f32) -> Block {
    let mut o = [0.0; BLOCK];
    for i in 0..BLOCK {
        o[i] = f(a[i], b[i]);
    }
    o
}

/// `exp` on a block, one operation at a time over all of its lanes: the operations of `exp`
/// in its order for every lane (the same bits, `tests/vmath.rs`), but the vectors of a block
/// go through each step side by side. `exp` and `erfc` are chains of some forty dependent
/// operations; a loop over single vectors waited on them (GELU ran at five cycles a value),
/// where side by side the chains overlap.
#[inline(always)]
fn exp_block(x: &Block) -> Block {
    let xc = each(x, |x| x.clamp(EXP_MIN, EXP_MAX));
    let k = each(&xc, |xc| xc * LOG2E + ROUND);
    let n = each(&k, |k| k - ROUND);
    let r = each2(&xc, &n, |xc, n| (xc - n * LN2_HI) - n * LN2_LO);
    let mut p = [1.0 / 5040.0; BLOCK];
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
        1.0,
    ] {
        p = each2(&r, &p, |r, p| c + r * p);
    }
    let scale = each(&k, |k| {
        let n_bits = k.to_bits().wrapping_sub(ROUND.to_bits());
        f32::from_bits(n_bits.wrapping_add(127) << 23)
    });
    let y = each2(&p, &scale, |p, scale| p * scale);
    let y = each2(x, &y, |x, y| if x > EXP_MAX { f32::INFINITY } else { y });
    each2(x, &y, |x, y| if x < EXP_MIN { 0.0 } else { y })
}

/// `gelu_forward_slope` on one block: `normal_cdf` and `gauss` as the scalar path computes
/// them, operation by operation over the block's lanes (the same bits, `tests/vmath.rs`).
#[inline(always)]
fn gelu_slope_block(x: &mut Block, y: &mut Block) {
    let v = *x;
    let g = exp_block(&each(&v, |v| -(v * v) * 0.5));
    let z = each(&v, |v| -v * std::f32::consts::FRAC_1_SQRT_2);
    let a = each(&z, |z| z.abs());
    let a = each(&a, |a| if a > 10.0 { 10.0 } else { a });
    let s = each(&a, |a| 1.0 / (1.0 + 0.5 * a) - 1.0);
    let mut p = [ERFCX[10]; BLOCK];
    for c in ERFCX[..10].iter().rev() {
        p = each2(&p, &s, |p, s| p * s + c);
    }
    let e = each2(&p, &g, |p, g| p * g);
    let c = each2(&z, &e, |z, e| 0.5 * if z < 0.0 { 2.0 - e } else { e });
    *y = each2(&v, &c, |v, c| v * c);
    for i in 0..BLOCK {
        x[i] = c[i] + v[i] * (g[i] * INV_SQRT_2PI);
    }
}

/// GELU backward from `gelu_forward_slope`'s slope, in place: `g ← 0 + g · slope`, the bits
/// `gelu_backward` leaves in a zeroed buffer (the `0 +` turns a −0 into +0).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_backward_slope(g: &mut [f32], slope: &[f32]) {
    for (g, &s) in g.iter_mut().zip(slope) {
        *g = 0.0 + *g * s;
    }
}

/// Softmax's numerators and denominator: `row ← exp(row − max)`, returning their sum (summed as
/// `lane_sum` does).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn exp_shifted(row: &mut [f32], max: f32) -> f32 {
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    lane_sum(row)
}

/// The largest value of a slice, ignoring NaNs as `f32::max` does (−∞ for an empty or
/// all-NaN slice). Kept in `LANES` running maxima so that it vectorises; the maximum is exact,
/// so the order cannot change it.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = a.max(v);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `Σ aᵢ·bᵢ`, in `lane_sum`'s order.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_dot(a, b)
}

/// `dot` inlined into a caller that is itself compiled per instruction set.
#[inline(always)]
pub fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    for ((s, &x), &y) in acc.iter_mut().zip(ra).zip(rb) {
        *s += x * y;
    }
    fold_lanes(acc)
}

/// Partial sums per reduction: one 512-bit register of f32.
pub const LANES: usize = 16;

/// A slice's sum in a fixed order that vectorises: element `i` goes to partial sum `i mod 16`,
/// and the 16 partial sums are added pairwise (`p[k] += p[k + w]` for w = 8, 4, 2, 1). Not the
/// left-to-right sum, but the same order on every machine and thread count; a serial sum would
/// wait four cycles per element on the addition before it.
#[inline(always)]
pub fn lane_sum(row: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a += v;
    }
    fold_lanes(acc)
}

/// The partial sums added pairwise: `p[k] += p[k + w]` for w = 8, 4, 2, 1.
#[inline(always)]
fn fold_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] += acc[k + w];
        }
    }
    acc[0]
}
