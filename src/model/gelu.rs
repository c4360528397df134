//! Exact (erf) GELU with a hand-written backward.
//!
//! Why not dfdx's `accurate_gelu`: its forward is right but its derivative in dfdx 0.13 drops
//! the chain-rule factor of `erf(x/√2)`, returning `Φ(x) + √2·x·φ(x)` instead of
//! `Φ(x) + x·φ(x)` — the encoder's gradient checks caught it. HF BERT's `gelu` is this one.

use super::fused::vmath::{self, INV_SQRT_2PI};
use super::host::{elementwise, Values};
use super::{Act, Dev};
use dfdx::prelude::*;
use num_traits::Float;
use rayon::prelude::*;

/// `x · Φ(x)` with `Φ` the standard normal CDF.
pub fn gelu_f<F: Float>(x: F, erf: impl Fn(F) -> F) -> F {
    let half = F::from(0.5).expect("constant");
    half * x * (F::one() + erf(x * F::from(std::f64::consts::FRAC_1_SQRT_2).expect("constant")))
}

/// `d/dx [x · Φ(x)] = Φ(x) + x · φ(x)`.
pub fn gelu_df<F: Float>(x: F, erf: impl Fn(F) -> F) -> F {
    let half = F::from(0.5).expect("constant");
    let cdf =
        half * (F::one() + erf(x * F::from(std::f64::consts::FRAC_1_SQRT_2).expect("constant")));
    let pdf = (-(x * x) * half).exp() * F::from(0.398_942_280_401_432_7).expect("1/sqrt(2π)");
    cdf + x * pdf
}

/// GELU on token rows: the host op below on the CPU, `gelu_device` on CUDA (where copying
/// every feed-forward activation to the host and back cost more than the arithmetic).
pub fn gelu<T: Tape<f32, Dev>>(x: Act<T>) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return gelu_host(x);
    #[cfg(feature = "cuda")]
    gelu_device(x)
}

/// Exact GELU from dfdx's own ops, which run on whichever device holds `x`. dfdx 0.13's
/// `accurate_gelu` has the right forward value, but its derivative's second term is
/// `√2·x·φ(x)` instead of `x·φ(x)` (module doc). Adding `k·(φ(x) − φ(x)₀)`, where `φ(x)₀` is
/// the same value computed without a tape and `k = √2 − 1`, adds exactly zero to the value
/// (the two computations are the same kernels on the same input) and `−k·x·φ(x)` to the
/// derivative (`φ' = −x·φ`), which cancels the excess. About twelve elementwise kernels,
/// all on the device; `tests/fused.rs` checks it against `gelu_host` on the CPU.
pub fn gelu_device<T: Tape<f32, Dev>>(x: Act<T>) -> Act<T> {
    const K: f32 = std::f32::consts::SQRT_2 - 1.0;
    let (x, tape) = x.split_tape();
    let pdf = |t: Act<T>| (t.square() * -0.5).exp() * INV_SQRT_2PI;
    let untaped = (x.clone().square() * -0.5).exp() * INV_SQRT_2PI;
    let correction = (pdf(x.retaped::<T>()) - untaped) * K;
    x.put_tape(tape).accurate_gelu() + correction
}

/// GELU on the host, forward and backward split over rayon's threads (elementwise, so the
/// result does not depend on the thread count). The forward pass keeps `Φ(x)` for the
/// backward one, which then needs only `exp` for `φ(x)` (`erf` is the costlier call); the
/// derivative is `gelu_df`'s, `Φ(x) + x·φ(x)`. Both passes run `fused::vmath`'s vectorised
/// kernels (Φ within 1.6e-7 of the exact value).
pub fn gelu_host<T: Tape<f32, Dev>>(x: Act<T>) -> Act<T> {
    let x = x.contiguous();
    let xv = Values::of(&x);
    let mut cdf = vec![0.0f32; xv.len()];
    let mut y = vec![0.0f32; xv.len()];
    y.par_chunks_mut(CHUNK)
        .zip(cdf.par_chunks_mut(CHUNK))
        .zip(xv.par_chunks(CHUNK))
        .for_each(|((y, c), x)| vmath::gelu_forward(x, y, c));
    elementwise(x, y, move |dx, g| {
        dx.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(xv.par_chunks(CHUNK))
            .zip(cdf.par_chunks(CHUNK))
            .for_each(|(((d, g), x), c)| vmath::gelu_backward(g, x, c, d))
    })
}

/// Elements per parallel task (and per call of the vectorised kernels).
const CHUNK: usize = 4096;
