//! `fused::vmath` against f64: the vectorisable `exp` and normal CDF that softmax, GELU and the
//! cross-entropy run on, and their slice kernels against the scalar functions.
//!
//! The erfc coefficients were fitted (degree 10 in `t − 1`, least squares relative to the
//! value on 400 Chebyshev nodes of t ∈ [1/6, 1], `a = 2/t − 2`) to `erfc(a)·e^(a²)` computed
//! with mpmath at 30 digits (`tests/fixtures/fit_erfcx.py`); the bounds below are what that
//! fit gives in f32, measured here on a dense grid.

use pretext::model::fused::vmath;

/// Every f32 in [lo, hi] at a step of about `step`, with the bounds.
fn grid(lo: f32, hi: f32, step: f32) -> Vec<f32> {
    let n = ((hi - lo) / step) as usize;
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f32 / n as f32)
        .collect()
}

fn ulps(got: f32, want: f64) -> f64 {
    let w = want as f32;
    let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
    (got as f64 - want).abs() / ulp
}

#[test]
fn exp_is_within_two_ulp_of_the_exact_value() {
    let mut worst = (0.0f64, 0.0f32);
    for x in grid(-87.3, 88.0, 1e-3)
        .into_iter()
        .chain(grid(-1.0, 1.0, 1e-6))
    {
        let u = ulps(vmath::exp(x), (x as f64).exp());
        if u > worst.0 {
            worst = (u, x);
        }
    }
    assert!(worst.0 <= 2.0, "{} ulp at x = {}", worst.0, worst.1);
    assert_eq!(vmath::exp(0.0), 1.0);
    // Below f32's smallest normal, and masked softmax scores: exactly zero. Overflow: +inf.
    assert_eq!(vmath::exp(-88.0), 0.0);
    assert_eq!(vmath::exp(-1e9), 0.0);
    assert_eq!(vmath::exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(vmath::exp(89.0), f32::INFINITY);
    assert!(vmath::exp(f32::NAN).is_nan());
}

#[test]
fn normal_cdf_is_within_its_stated_error() {
    let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for x in grid(-16.0, 16.0, 1e-4) {
        let (got, want) = (vmath::normal_cdf(x) as f64, phi(x as f64));
        abs = abs.max((got - want).abs());
        if want > 1e-30 {
            rel = rel.max((got - want).abs() / want);
        }
    }
    eprintln!("normal_cdf: absolute {abs:e}, relative {rel:e}");
    assert!(abs <= 1.4e-7, "absolute error {abs:e}");
    assert!(rel <= 6e-6, "relative error {rel:e}");
    assert_eq!(vmath::normal_cdf(f32::INFINITY), 1.0);
    assert_eq!(vmath::normal_cdf(f32::NEG_INFINITY), 0.0);
    assert!(vmath::normal_cdf(f32::NAN).is_nan());
    assert!((vmath::erfc(0.0) - 1.0).abs() < 2e-7);
}

/// `max` ignores NaNs as `f32::max` does, and is −∞ with nothing to compare.
#[test]
fn max_ignores_nans_and_starts_at_minus_infinity() {
    assert_eq!(vmath::max(&[]), f32::NEG_INFINITY);
    assert_eq!(vmath::max(&[f32::NAN; 20]), f32::NEG_INFINITY);
    let mut v: Vec<f32> = (0..37).map(|i| -(i as f32)).collect();
    v[20] = f32::NAN;
    v[36] = 3.5;
    assert_eq!(vmath::max(&v), 3.5);
}

/// The slice kernels (compiled per instruction set) equal the scalar functions bit for bit,
/// on lengths that leave every SIMD remainder.
#[test]
fn slice_kernels_equal_the_scalar_functions() {
    for n in [1, 7, 15, 16, 17, 31, 33, 100] {
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let (mut y, mut c) = (vec![0.0; n], vec![0.0; n]);
        vmath::gelu_forward(&x, &mut y, &mut c);
        for i in 0..n {
            assert_eq!(c[i].to_bits(), vmath::normal_cdf(x[i]).to_bits());
            assert_eq!(y[i].to_bits(), (x[i] * c[i]).to_bits());
        }
        let g: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.01).collect();
        let mut dx = vec![0.5; n];
        vmath::gelu_backward(&g, &x, &c, &mut dx);
        for i in 0..n {
            let pdf = vmath::exp(-(x[i] * x[i]) * 0.5) * vmath::INV_SQRT_2PI;
            assert_eq!(
                dx[i].to_bits(),
                (0.5 + g[i] * (c[i] + x[i] * pdf)).to_bits()
            );
        }
        let mut row = x.clone();
        let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(vmath::max(&x), max);
        let sum = vmath::exp_shifted(&mut row, max);
        // The documented order: partial sum i mod 16, then pairwise.
        let mut partial = [0.0f32; 16];
        for i in 0..n {
            let e = vmath::exp(x[i] - max);
            assert_eq!(row[i].to_bits(), e.to_bits());
            partial[i % 16] += e;
        }
        for w in [8, 4, 2, 1] {
            for k in 0..w {
                partial[k] += partial[k + w];
            }
        }
        assert_eq!(sum.to_bits(), partial[0].to_bits());
        let mut lanes = [0.0f32; 16];
        for i in 0..n {
            lanes[i % 16] += x[i] * g[i];
        }
        for w in [8, 4, 2, 1] {
            for k in 0..w {
                lanes[k] += lanes[k + w];
            }
        }
        assert_eq!(vmath::dot(&x, &g).to_bits(), lanes[0].to_bits());
        let serial: f64 = row.iter().map(|&v| v as f64).sum();
        assert!((sum as f64 - serial).abs() <= 1e-6 * serial);
    }
}

/// The training pair (`gelu_forward_slope` in place, then `gelu_backward_slope` in place) gives the
/// forward values and the gradient `gelu_forward` and `gelu_backward` give, into a zeroed
/// buffer, bit for bit — including a zero gradient of either sign, which comes out +0.
#[test]
fn gelu_slope_kernels_equal_the_cdf_pair() {
    for n in [1, 7, 16, 17, 33, 100] {
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if i == 3 {
                    -0.0
                } else {
                    (i as f32 * 0.53).cos() * 5.0
                }
            })
            .collect();
        let (mut y, mut c) = (vec![0.0; n], vec![0.0; n]);
        vmath::gelu_forward(&x, &mut y, &mut c);
        let (mut y2, mut slope) = (vec![0.0; n], x.clone());
        vmath::gelu_forward_slope(&mut slope, &mut y2);
        assert_eq!(bits(&y), bits(&y2));
        let g: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => -0.0,
                1 => 0.0,
                _ => 0.7 - i as f32 * 0.02,
            })
            .collect();
        let mut dx = vec![0.0; n];
        vmath::gelu_backward(&g, &x, &c, &mut dx);
        let mut g2 = g.clone();
        vmath::gelu_backward_slope(&mut g2, &slope);
        assert_eq!(bits(&dx), bits(&g2));
    }
}

/// `gelu_forward_slope` works on whole blocks of values step by step side by side, and on the
/// rest one value at a time: both give the same bits for every value, at the edges of `exp`'s
/// and `erfc`'s ranges, for infinities, NaN and signed zeros too.
#[test]
fn gelu_forward_slope_blocks_equal_single_values() {
    let special = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-30,
        -1e-30,
        14.2,
        -14.2,
        13.0,
        -13.0,
        100.0,
        -100.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
    ];
    let x: Vec<f32> = (0..96)
        .map(|i| match special.get(i % 40) {
            Some(&v) => v,
            None => (i as f32 * 0.37).sin() * 9.0,
        })
        .collect();
    let (mut slope, mut y) = (x.clone(), vec![0.0; x.len()]);
    vmath::gelu_forward_slope(&mut slope, &mut y);
    for (i, &v) in x.iter().enumerate() {
        let (mut s1, mut y1) = ([v], [0.0]);
        vmath::gelu_forward_slope(&mut s1, &mut y1);
        assert_eq!(y[i].to_bits(), y1[0].to_bits(), "GELU at {v}");
        assert_eq!(slope[i].to_bits(), s1[0].to_bits(), "GELU's slope at {v}");
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// GELU's derivative as the kernels compute it matches a central difference of their forward
/// pass (in f64 around the f32 values, so the check is of the formula, not of rounding).
#[test]
fn gelu_kernels_are_consistent_with_their_derivative() {
    for x in grid(-6.0, 6.0, 0.01) {
        let h = 1e-3f32;
        let f = |v: f32| (v * vmath::normal_cdf(v)) as f64;
        let numeric = (f(x + h) - f(x - h)) / (2.0 * h as f64);
        let (mut dx, c) = ([0.0f32], [vmath::normal_cdf(x)]);
        vmath::gelu_backward(&[1.0], &[x], &c, &mut dx);
        assert!(
            (dx[0] as f64 - numeric).abs() < 2e-3,
            "x = {x}: {} vs {numeric}",
            dx[0]
        );
    }
}
