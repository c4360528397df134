//! The residual connection of a sublayer, `x + drop(h)`, in one op: dfdx would draw the mask
//! into a tensor, multiply, then add, each a pass with its own buffer.
//!
//! The keep mask is drawn exactly as `ops::dropout` draws it, so fusing changes no random draw.
//! Backward: `dx = g`, `dh = g ⊙ k`.

use crate::model::host::{accumulate, add_from_host, fresh_to_vec, take_output_grad};
use crate::model::ops::keep_mask;
use crate::model::{Act, Dev};
use crate::rng::Rng;
use dfdx::prelude::*;
use rayon::prelude::*;

/// `x + drop(h)` with dropout probability `p` when `rng` is given. The tape rides on `h`;
/// `x` is the sublayer's input, whose gradient the tape also collects.
pub fn residual_dropout<T: Tape<f32, Dev>>(
    h: Act<T>,
    x: &Act<NoneTape>,
    p: f32,
    rng: Option<&mut Rng>,
) -> Act<T> {
    let h = h.contiguous();
    let shape = *h.shape();
    let keep = match rng {
        Some(rng) if p > 0.0 => Some(keep_mask(shape.num_elements(), p, rng)),
        _ => None,
    };
    let mut y = fresh_to_vec(&h);
    let xv = fresh_to_vec(x);
    match &keep {
        Some(k) => y
            .par_iter_mut()
            .zip(&xv)
            .zip(k)
            .for_each(|((y, x), k)| *y = *y * k + x),
        None => y.par_iter_mut().zip(&xv).for_each(|(y, x)| *y += x),
    }
    let (h, mut tape) = h.split_tape();
    let out: Act<NoneTape> = h.device().tensor_from_vec(y, shape);
    let (h_ghost, x_ghost, out_ghost) = (h.ghost(), x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&h_ghost)?;
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        add_from_host(grads.get_or_alloc_mut(&x_ghost)?, &g)?;
        match &keep {
            Some(k) => accumulate(grads.get_or_alloc_mut(&h_ghost)?, |dh| {
                dh.par_iter_mut()
                    .zip(&g)
                    .zip(k)
                    .for_each(|((d, g), k)| *d += g * k)
            }),
            None => add_from_host(grads.get_or_alloc_mut(&h_ghost)?, &g),
        }
    });
    out.put_tape(tape)
}
