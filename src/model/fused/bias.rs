//! `x + b` with a bias `b` broadcast over token rows: the second half of every linear layer.

use super::column_sums;
use crate::model::host::{add_from_host, copied, take_output_grad, Values};
use crate::model::{Act, Dev, Vector};
use dfdx::prelude::*;
use rayon::prelude::*;

/// `x + b`, `x` of shape `(N, C)` and `b` of shape `(C,)`.
pub fn add_bias<T: Tape<f32, Dev>>(x: Act<T>, bias: &Vector) -> Act<T> {
    let x = x.contiguous();
    let shape = *x.shape();
    let c = shape.1;
    let b = bias.as_vec();
    let mut y = copied(&Values::of(&x));
    y.par_chunks_mut(c * super::ROWS).for_each(|block| {
        for row in block.chunks_exact_mut(c) {
            for (v, bb) in row.iter_mut().zip(&b) {
                *v += bb;
            }
        }
    });
    let (x, mut tape) = x.split_tape();
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, shape);
    let (x_ghost, b_ghost, out_ghost) = (x.ghost(), bias.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&b_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        add_from_host(grads.get_or_alloc_mut(&x_ghost)?, &g)?;
        add_from_host(grads.get_or_alloc_mut(&b_ghost)?, &column_sums(&g, c))
    });
    out.put_tape(tape)
}
