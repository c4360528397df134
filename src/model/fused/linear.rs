//! A linear layer, `y = x Wᵀ + b` on token rows, as one op whose products go through our
//! `gemm` (AVX-512 where the CPU has it) rather than dfdx's matmul, with the bias folded in:
//! `y` starts as the bias rows (or zeros, for a layer without bias) and the product
//! accumulates onto it — in bf16, the bias is added as the kernel stores each tile
//! (`gemm::onto_bias`), the same sums without the rows written first.
//!
//! Backward: `dx = g W`, `dW = gᵀ x`, `db = Σ_rows g`, the two products accumulating straight
//! into dfdx's gradient buffers, in the precision the forward product used. With bf16
//! products, `x` is kept rounded to bf16 (`Kept`) and `g` is rounded once for both of its
//! products: each is rounded once instead of once per product, and `x` takes half the memory
//! until the backward pass.

use super::gemm::{matmul, onto_bias, Into, Kept, View};
use super::kept_with_sums;
use crate::model::host::{accumulate, add_from_host, take_output_grad, DevError, GradBuf, Values};
use crate::model::precision::{products, Precision};
use crate::model::{Act, Dev, Matrix, Vector};
use dfdx::prelude::*;

/// `x`: `(N, in)`; `weight`: `(out, in)`; `bias`: `(out,)`, if any.
pub fn linear<T: Tape<f32, Dev>>(x: Act<T>, weight: &Matrix, bias: Option<&Vector>) -> Act<T> {
    let x = x.contiguous();
    let (n, d_in) = *x.shape();
    let (d_out, w_in) = *weight.shape();
    assert_eq!(d_in, w_in, "linear: input width against the weight's");
    let precision = products();
    let xk = Kept::new(Values::of(&x), precision);
    let w = Values::of(weight);
    let y = forward(&xk, &w, bias, (n, d_in, d_out), precision);
    let (x, mut tape) = x.split_tape();
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, (n, d_out));
    let (x_ghost, w_ghost, b_ghost, out_ghost) = (
        x.ghost(),
        weight.ghost(),
        bias.map(|b| b.ghost()),
        out.ghost(),
    );
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        let (gk, db) = kept_with_sums(g, d_out, precision, b_ghost.is_some(), |_, _| {});
        let grad = finder(|grads, of| match (of, &b_ghost) {
            (Of::Input, _) => grads.get_or_alloc_mut(&x_ghost),
            (Of::Weight, _) => grads.get_or_alloc_mut(&w_ghost),
            (Of::Bias, Some(b)) => grads.get_or_alloc_mut(b),
            (Of::Bias, None) => unreachable!("a bias gradient without a bias"),
        });
        backward(grads, grad, (gk, db), &xk, &w, (n, d_in, d_out), precision)
    });
    out.put_tape(tape)
}

/// Which of a linear layer's tensors a gradient buffer belongs to.
#[derive(Clone, Copy)]
pub(super) enum Of {
    Input,
    Weight,
    Bias,
}

/// `f` as a finder of gradient buffers (a closure's signature that Rust does not infer).
pub(super) fn finder<F>(f: F) -> F
where
    F: for<'g> Fn(&'g mut Gradients<f32, Dev>, Of) -> Result<&'g mut GradBuf, DevError>,
{
    f
}

/// A linear layer's backward pass from its output's gradient `g` (as `precision`'s products
/// read it, with its column sums when the layer has a bias): `dx += g W`, `dW += gᵀ x`,
/// `db += Σ_rows g`, for `x` `(n, d_in)` and `W` `(d_out, d_in)`; `grad` finds each
/// tensor's gradient buffer (dfdx's ghosts cannot be named outside it).
pub(super) fn backward(
    grads: &mut Gradients<f32, Dev>,
    grad: impl for<'g> Fn(&'g mut Gradients<f32, Dev>, Of) -> Result<&'g mut GradBuf, DevError>,
    (gk, db): (Kept, Option<Vec<f32>>),
    xk: &Kept,
    w: &[f32],
    (n, d_in, d_out): (usize, usize, usize),
    precision: Precision,
) -> Result<(), DevError> {
    let gs = gk.view(0, (n, d_out), d_out);
    let ws = View::new(w, 0, (d_out, d_in), d_in);
    let xs = xk.view(0, (n, d_in), d_in);
    accumulate(grad(grads, Of::Input)?, |dx| {
        matmul(dx, 0, d_in, gs, ws, 1.0, Into::Accumulate, true, precision)
    })?;
    accumulate(grad(grads, Of::Weight)?, |dw| {
        matmul(
            dw,
            0,
            d_in,
            gs.t(),
            xs,
            1.0,
            Into::Accumulate,
            true,
            precision,
        )
    })?;
    match db {
        Some(db) => add_from_host(grad(grads, Of::Bias)?, &db),
        None => Ok(()),
    }
}

/// A linear layer's forward product, `a Wᵀ + bias` for `a` `(n, k)` and `w` `(m, k)`,
/// `(n, k, m)` = `dims` (`gemm::onto_bias`).
pub(super) fn forward(
    a: &Kept,
    w: &[f32],
    bias: Option<&Vector>,
    (n, k, m): (usize, usize, usize),
    precision: Precision,
) -> Vec<f32> {
    let w = View::new(w, 0, (m, k), k);
    let bias = bias.map(|b| b.as_vec());
    onto_bias(
        a.view(0, (n, k), k),
        w.t().into(),
        bias.as_deref(),
        precision,
    )
}
