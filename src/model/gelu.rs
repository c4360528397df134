//! Exact (erf) GELU with a hand-written backward.
//!
//! Why not dfdx's `accurate_gelu`: its forward is right but its derivative in dfdx 0.13 drops
//! the chain-rule factor of `erf(x/√2)`, returning `Φ(x) + √2·x·φ(x)` instead of
//! `Φ(x) + x·φ(x)` — the encoder's gradient checks caught it. HF BERT's `gelu` is this one.

use super::host::{accumulate, fresh_to_vec, take_output_grad};
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

/// GELU on token rows, forward and backward split over rayon's threads (elementwise, so the
/// result does not depend on the thread count). The forward pass keeps `Φ(x)` for the
/// backward one, which then needs only `exp` for `φ(x)` (`erf` is the costlier call); the
/// derivative is `gelu_df`'s, `Φ(x) + x·φ(x)`.
pub fn gelu<T: Tape<f32, Dev>>(x: Act<T>) -> Act<T> {
    let x = x.contiguous();
    let shape = *x.shape();
    let xv = fresh_to_vec(&x);
    let half = 0.5f32;
    let mut cdf = vec![0.0f32; xv.len()];
    let mut y = vec![0.0f32; xv.len()];
    y.par_iter_mut()
        .zip(cdf.par_iter_mut())
        .zip(&xv)
        .for_each(|((y, c), &v)| {
            *c = half * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2));
            *y = v * *c;
        });
    let (x, mut tape) = x.split_tape();
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, shape);
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| {
            dx.par_iter_mut()
                .zip(&g)
                .zip(&xv)
                .zip(&cdf)
                .for_each(|(((d, gi), &xi), &c)| {
                    let pdf = (-(xi * xi) * half).exp() * INV_SQRT_2PI;
                    *d += gi * (c + xi * pdf);
                })
        })
    });
    out.put_tape(tape)
}

/// `1/√(2π)`, the peak of the standard normal density.
const INV_SQRT_2PI: f32 = 0.398_942_3;
