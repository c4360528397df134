//! LayerNorm over the hidden axis with its affine, `γ ⊙ (x − μ)/√(σ² + ε) + β`, in one pass.
//!
//! Backward, per row with `x̂` the normalised input, `r = 1/√(σ² + ε)` and `h = g ⊙ γ`:
//! `dx = r · (h − mean(h) − x̂ · mean(h ⊙ x̂))`, `dγ = Σ_rows g ⊙ x̂`, `dβ = Σ_rows g`.

use super::vmath::{lane_dot, lane_sum};
use super::{add_partials, block_sums, ROWS};
use crate::model::host::{accumulate, add_from_host, copied, take_output_grad, Values};
use crate::model::params::Affine;
use crate::model::{Act, Dev};
use dfdx::prelude::*;
use multiversion::multiversion;
use rayon::prelude::*;

pub fn layer_norm<T: Tape<f32, Dev>>(x: Act<T>, a: &Affine, eps: f32) -> Act<T> {
    let x = x.contiguous();
    let shape = *x.shape();
    let (n, c) = shape;
    let (gamma, beta) = (a.weight.as_vec(), a.bias.as_vec());
    let mut xhat = copied(&Values::of(&x));
    let mut rstd = vec![0.0f32; n];
    let mut y = vec![0.0; n * c];
    xhat.par_chunks_mut(c * ROWS)
        .zip(rstd.par_chunks_mut(ROWS))
        .zip(y.par_chunks_mut(c * ROWS))
        .for_each(|((xs, rs), ys)| forward_rows(xs, rs, ys, &gamma, &beta, eps));
    let (x, mut tape) = x.split_tape();
    let out: Act<NoneTape> = x.device().tensor_from_vec(y, shape);
    let (x_ghost, w_ghost, b_ghost, out_ghost) =
        (x.ghost(), a.weight.ghost(), a.bias.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&w_ghost)?;
        grads.try_alloc_for(&b_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        // Each block's share of dγ and dβ is summed as the block is done (`g ⊙ x̂` only ever
        // exists a block at a time): the sums `column_sums` would make, without two more
        // passes over memory.
        let mut partial = Vec::new();
        accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| {
            partial = dx
                .par_chunks_mut(c * ROWS)
                .zip(g.par_chunks(c * ROWS))
                .zip(xhat.par_chunks(c * ROWS))
                .zip(rstd.par_chunks(ROWS))
                .map_init(
                    || vec![0.0f32; c * ROWS],
                    |gx, (((dxs, gs), xs), rs)| {
                        let gx = &mut gx[..gs.len()];
                        backward_rows(dxs, gx, gs, xs, rs, &gamma);
                        (block_sums(gx, c), block_sums(gs, c))
                    },
                )
                .collect::<Vec<_>>();
        })?;
        let (dw, db): (Vec<_>, Vec<_>) = partial.into_iter().unzip();
        add_from_host(grads.get_or_alloc_mut(&w_ghost)?, &add_partials(dw, c))?;
        add_from_host(grads.get_or_alloc_mut(&b_ghost)?, &add_partials(db, c))
    });
    out.put_tape(tape)
}

/// Forward over a block of rows: `xs` in as x and out as x̂, `rs ← 1/√(σ² + ε)`,
/// `ys ← γ ⊙ x̂ + β`. Mean and variance are summed in `vmath`'s fixed lanes.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn forward_rows(
    xs: &mut [f32],
    rs: &mut [f32],
    ys: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let c = gamma.len();
    for ((row, r), out) in xs.chunks_exact_mut(c).zip(rs).zip(ys.chunks_exact_mut(c)) {
        let mean = lane_sum(row) / c as f32;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let var = lane_dot(row, row) / c as f32;
        *r = 1.0 / (var + eps).sqrt();
        for (((v, o), g), b) in row.iter_mut().zip(out.iter_mut()).zip(gamma).zip(beta) {
            *v *= *r;
            *o = g * *v + b;
        }
    }
}

/// Backward over a block of rows: `dxs += r · (h − mean(h) − x̂ · mean(h ⊙ x̂))` with
/// `h = g ⊙ γ`, and `gxs ← g ⊙ x̂` for γ's gradient.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn backward_rows(
    dxs: &mut [f32],
    gxs: &mut [f32],
    gs: &[f32],
    xs: &[f32],
    rs: &[f32],
    gamma: &[f32],
) {
    let c = gamma.len();
    let mut h = vec![0.0f32; c];
    let rows = dxs
        .chunks_exact_mut(c)
        .zip(gxs.chunks_exact_mut(c))
        .zip(gs.chunks_exact(c))
        .zip(xs.chunks_exact(c))
        .zip(rs);
    for ((((d, gxr), gr), xr), r) in rows {
        for ((h, gi), wi) in h.iter_mut().zip(gr).zip(gamma) {
            *h = gi * wi;
        }
        let (m1, m2) = (lane_sum(&h) / c as f32, lane_dot(&h, xr) / c as f32);
        for ((((di, gxi), gi), hi), xi) in d.iter_mut().zip(gxr.iter_mut()).zip(gr).zip(&h).zip(xr)
        {
            *di += r * (hi - m1 - xi * m2);
            *gxi = gi * xi;
        }
    }
}
