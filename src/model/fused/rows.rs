//! Rows put back in their places: the last block's output, computed at the rows the objectives
//! read (`Encoder::forward_rows`), as the `(total, H)` hidden states the objectives index.
//!
//! The rows nobody asked for are NaN, so an objective that reads a row it did not declare
//! (`Objective::rows`) gets a non-finite loss, which the loop stops on, naming the objective,
//! rather than a quietly wrong one. Backward: the asked-for rows of the output's gradient.

use crate::model::host::{add_from_host, picked_rows, take_output_grad, Values};
use crate::model::{Act, Dev};
use dfdx::prelude::*;

/// `(rows.len(), H)` → `(total, H)`: row `i` of `x` becomes row `rows[i]`, every other row NaN.
pub fn scatter_rows<T: Tape<f32, Dev>>(x: Act<T>, rows: &[usize], total: usize) -> Act<T> {
    let x = x.contiguous();
    let (m, h) = *x.shape();
    assert_eq!(m, rows.len(), "scatter_rows: one row of x per row index");
    let mut y = vec![f32::NAN; total * h];
    {
        let xv = Values::of(&x);
        for (from, &to) in xv.chunks_exact(h.max(1)).zip(rows) {
            y[to * h..(to + 1) * h].copy_from_slice(from);
        }
    }
    let (x, mut tape) = x.split_tape();
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, (total, h));
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    let rows = rows.to_vec();
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        add_from_host(
            grads.get_or_alloc_mut(&x_ghost)?,
            &picked_rows(&g, &rows, h),
        )
    });
    out.put_tape(tape)
}
