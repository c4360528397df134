//! The feed-forward sublayer, `down(gelu(up(x)))`, as one op: the same arithmetic as
//! `fused::linear`, `gelu::gelu_host` and `fused::linear` in a row, bit for bit
//! (`tests/sublayers.rs`; in f32 the up projection's bias joins its sums after the product, the
//! same float for inputs up to 512 wide, see `Kept::made_from_product`), without the two
//! `(N, ffn)` tensors between them. Composed, each of those is a dfdx tensor whose gradient dfdx
//! allocates and zeroes (and, before `host::Values`, that the next op copied out on the step's
//! thread while the others waited). Here the pre-activation `u` stays a host vector, which GELU
//! overwrites with its slope (all the backward pass needs of `u`), and the activation `a`
//! exists only as the products read it (`Kept::made_from_product`: in bf16, GELU runs on each
//! tile of `u` as the kernel finishes it, and its output is rounded there, so `u` is written
//! once and never read back until the backward pass).
//!
//! Backward, with `g` the output's gradient: `da = g W_d`, `dW_d += gᵀ a`, `db_d += Σ g`;
//! `du = da · gelu'(u)` (in `da`'s buffer, each block summed for `db_u` as it is made);
//! `dx += du W_u`, `dW_u += duᵀ x`, `db_u += Σ du` — each buffer added to
//! once, in the order the composed ops' backward passes ran.

use super::gemm::{fresh, matmul, Into, Kept, Operand, View};
use super::linear;
use super::residual::Residual;
use super::{kept_with_sums, vmath};
use crate::model::host::{accumulate, add_from_host, take_output_grad, Values};
use crate::model::params::Linear;
use crate::model::precision::products;
use crate::model::{Act, Dev};
use crate::rng::Rng;
use dfdx::prelude::*;

/// `(N, in)` → `(N, out)` through `up` `(ffn, in)`, exact GELU and `down` `(out, ffn)`; with
/// `residual`, `residual.x + drop(that)`, the dropout drawn from `rng`.
pub fn feed_forward<T: Tape<f32, Dev>>(
    x: Act<T>,
    up: &Linear,
    down: &Linear,
    residual: Option<Residual>,
    rng: Option<&mut Rng>,
) -> Act<T> {
    let x = x.contiguous();
    let (n, d_in) = *x.shape();
    let (ffn, up_in) = *up.weight.shape();
    let (d_out, down_in) = *down.weight.shape();
    assert_eq!(
        d_in, up_in,
        "feed-forward: input width against the up weight's"
    );
    assert_eq!(
        ffn, down_in,
        "feed-forward: up's width against the down weight's"
    );
    let precision = products();
    let xk = Kept::new(Values::of(&x), precision);
    let (wu, wd) = (Values::of(&up.weight), Values::of(&down.weight));
    // The activation exists only as the down projection reads it (rounded as made, in bf16,
    // each tile as the kernel finishes it); `u` becomes GELU's slope at `u`, all the backward
    // pass needs of it.
    let (slope, ak) = Kept::made_from_product(
        xk.view(0, (n, d_in), d_in),
        View::new(&wu, 0, (ffn, d_in), d_in).t().into(),
        up.bias.as_ref().map(|b| b.as_vec()).as_deref(),
        precision,
        |_, a, u| vmath::gelu_forward_slope(u, a),
    );
    let mut y = linear::forward(&ak, &wd, down.bias.as_ref(), (n, ffn, d_out), precision);
    let keep = residual.as_ref().map(|r| r.add(&mut y, rng));

    let (x, mut tape) = x.split_tape();
    let rx_ghost = residual.map(|r| r.x.ghost());
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, (n, d_out));
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    let (wu_ghost, bu_ghost) = (up.weight.ghost(), up.bias.as_ref().map(|b| b.ghost()));
    let (wd_ghost, bd_ghost) = (down.weight.ghost(), down.bias.as_ref().map(|b| b.ghost()));
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&wu_ghost)?;
        grads.try_alloc_for(&wd_ghost)?;
        for b in [&bu_ghost, &bd_ghost].into_iter().flatten() {
            grads.try_alloc_for(b)?;
        }
        if let Some(r) = &rx_ghost {
            grads.try_alloc_for(r)?;
        }
        grads.try_alloc_for(&out_ghost)?;
        let mut dy = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        if let (Some(r), Some(keep)) = (&rx_ghost, &keep) {
            keep.to_input(grads.get_or_alloc_mut(r)?, &dy)?;
            dy = keep.through(dy);
        }
        let mm = |dst: &mut [f32], rs: usize, a: Operand, b: Operand| {
            matmul(dst, 0, rs, a, b, 1.0, Into::Accumulate, true, precision)
        };
        // The down projection.
        let (dy, db_down) = kept_with_sums(dy, d_out, precision, bd_ghost.is_some(), |_, _| {});
        let dy = dy.view(0, (n, d_out), d_out);
        let da = fresh(dy, View::new(&wd, 0, (d_out, ffn), ffn), precision);
        let a = ak.view(0, (n, ffn), ffn);
        accumulate(grads.get_or_alloc_mut(&wd_ghost)?, |dw| {
            mm(dw, ffn, dy.t(), a)
        })?;
        if let (Some(b), Some(sums)) = (&bd_ghost, db_down) {
            add_from_host(grads.get_or_alloc_mut(b)?, &sums)?;
        }
        // GELU, in place (`da` becomes `du`), each block summed for the bias and rounded
        // as it is made.
        let (du, db_up) = kept_with_sums(da, ffn, precision, bu_ghost.is_some(), |at, block| {
            vmath::gelu_backward_slope(block, &slope[at..at + block.len()])
        });
        // The up projection.
        let du = du.view(0, (n, ffn), ffn);
        let wu = View::new(&wu, 0, (ffn, d_in), d_in).into();
        accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| mm(dx, d_in, du, wu))?;
        let x = xk.view(0, (n, d_in), d_in);
        accumulate(grads.get_or_alloc_mut(&wu_ghost)?, |dw| {
            mm(dw, d_in, du.t(), x)
        })?;
        match (&bu_ghost, db_up) {
            (Some(b), Some(sums)) => add_from_host(grads.get_or_alloc_mut(b)?, &sums),
            _ => Ok(()),
        }
    });
    out.put_tape(tape)
}
