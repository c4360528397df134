//! The attention sublayer — the Q, K and V projections, the attention core and the output
//! projection — as one op: the same arithmetic as four `fused::linear` ops around
//! `fused::attention`, bit for bit (`tests/sublayers.rs`), without the five `(N, H)` dfdx
//! tensors between them. Composed, each projection copied the sublayer's input out of its dfdx
//! tensor (and rounded it, in bf16), the core copied Q, K and V out of theirs, the output
//! projection copied the context, and backward, dfdx allocated and zeroed a gradient for each
//! of Q, K, V and the context, into which the core's gradients were added. Here the input is
//! copied and rounded once for the three projections, and Q, K, V and the context stay host
//! vectors, held as the products read them (`Kept`).
//!
//! Backward runs the composed ops' backward passes in the order dfdx ran them (the output
//! projection, the core, then V, K, Q), so the input's gradient sums its three terms in the
//! same order.

use super::attention::{backward, forward};
use super::gemm::{fresh, matmul, Into, Kept, Operand, View};
use super::kept_with_sums;
use super::linear;
use super::residual::Residual;
use crate::model::attention::ScoreBias;
use crate::model::host::{
    accumulate, add_from_host, add_to_rows, picked_rows, take_output_grad, Values,
};
use crate::model::params::Linear;
use crate::model::precision::products;
use crate::model::{Act, Dev};
use crate::rng::Rng;
use dfdx::prelude::*;

/// `out(attention(q(x), k(x), v(x)))` for token rows `x` `(B·S, H)`, with dropout `p` on the
/// attention probabilities when `rng` is given; with `residual`, `residual.x + drop(that)`,
/// its dropout drawn from `rng` after the attention's. With `queries` (sorted token rows),
/// only those rows are queried, and the output holds only them: the keys and values are still
/// every token's (the last block when the objectives read some rows only).
#[allow(clippy::too_many_arguments)]
pub fn self_attention<T: Tape<f32, Dev>>(
    x: Act<T>,
    [q, k, v, o]: [&Linear; 4],
    (batch, seq, heads): (usize, usize, usize),
    bias: &ScoreBias,
    p: f32,
    residual: Option<Residual>,
    mut rng: Option<&mut Rng>,
    queries: Option<&[usize]>,
) -> Act<T> {
    let x = x.contiguous();
    let (n, h) = *x.shape();
    for l in [q, k, v, o] {
        assert_eq!(*l.weight.shape(), (h, h), "attention: a projection's shape");
    }
    let precision = products();
    let xk = Kept::new(Values::of(&x), precision);
    // The query rows, when not all, with their input rows.
    let picked = queries.map(|rows| {
        let xq = Kept::new(picked_rows(&Values::of(&x), rows, h), precision);
        (rows.to_vec(), xq)
    });
    let m = queries.map_or(n, <[usize]>::len);
    let w = [q, k, v, o].map(|l| Values::of(&l.weight));
    let project = |l: &Linear, w: &[f32], a: &Kept, rows: usize| {
        linear::forward(a, w, l.bias.as_ref(), (rows, h, h), precision)
    };
    let qkv = [0, 1, 2].map(|i| match (i, &picked) {
        (0, Some((_, xq))) => Kept::new(project(q, &w[0], xq, m), precision),
        _ => Kept::new(project([q, k, v][i], &w[i], &xk, n), precision),
    });
    let (ctx, core) = forward(
        qkv,
        (batch, seq, heads),
        queries,
        bias,
        p,
        rng.as_deref_mut(),
        precision,
    );
    let ctx = Kept::new(ctx, precision);
    let mut y = project(o, &w[3], &ctx, m);
    let keep = residual.as_ref().map(|r| r.add(&mut y, rng));

    let (x, mut tape) = x.split_tape();
    let rx_ghost = residual.map(|r| r.x.ghost());
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, (m, h));
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    let ghosts = [q, k, v, o].map(|l| (l.weight.ghost(), l.bias.as_ref().map(|b| b.ghost())));
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        for (w, b) in &ghosts {
            grads.try_alloc_for(w)?;
            if let Some(b) = b {
                grads.try_alloc_for(b)?;
            }
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
        let mm = |dst: &mut [f32], a: Operand, b: Operand| {
            matmul(dst, 0, h, a, b, 1.0, Into::Accumulate, true, precision)
        };
        let weight = |i: usize| View::new(&w[i], 0, (h, h), h).into();
        // Each projection, from its output's gradient `g` (of `rows` rows): `db = Σ g` (before
        // `g` is rounded), `dW += gᵀ a` for its input `a`, and `g W`: a new matrix (the
        // context's gradient) for `Dx::Own`, else added to `dx` (at the query rows).
        let mut projection = |i: usize, g: Vec<f32>, a: &Kept, rows: usize, to: Dx| {
            let (w_ghost, b_ghost) = &ghosts[i];
            let (g, db) = kept_with_sums(g, h, precision, b_ghost.is_some(), |_, _| {});
            let g = g.view(0, (rows, h), h);
            let dx = match to {
                Dx::Own => Some(fresh(g, weight(i), precision)),
                Dx::Add => {
                    accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| mm(dx, g, weight(i)))?;
                    None
                }
                Dx::At(at) => {
                    let part = fresh(g, weight(i), precision);
                    accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| {
                        add_to_rows(dx, &part, at, h)
                    })?;
                    None
                }
            };
            let a = a.view(0, (rows, h), h);
            accumulate(grads.get_or_alloc_mut(w_ghost)?, |dw| mm(dw, g.t(), a))?;
            if let (Some(b), Some(db)) = (b_ghost, db) {
                add_from_host(grads.get_or_alloc_mut(b)?, &db)?;
            }
            Ok(dx)
        };
        let dctx = projection(3, dy, &ctx, m, Dx::Own)?.unwrap_or_default();
        let (dq, dk, dv) = backward(&core, &Kept::new(dctx, precision));
        projection(2, dv, &xk, n, Dx::Add)?;
        projection(1, dk, &xk, n, Dx::Add)?;
        match &picked {
            Some((rows, xq)) => projection(0, dq, xq, m, Dx::At(rows)),
            None => projection(0, dq, &xk, n, Dx::Add),
        }
        .map(|_| ())
    });
    out.put_tape(tape)
}

/// Where a projection's input gradient goes.
enum Dx<'a> {
    /// A new matrix: the context's gradient.
    Own,
    /// Added to the sublayer input's gradient.
    Add,
    /// Added to those rows of it: the queries' rows.
    At(&'a [usize]),
}
