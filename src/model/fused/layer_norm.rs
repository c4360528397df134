//! LayerNorm over the hidden axis with its affine, `γ ⊙ (x − μ)/√(σ² + ε) + β`, in one pass.
//!
//! Backward, per row with `x̂` the normalised input, `r = 1/√(σ² + ε)` and `h = g ⊙ γ`:
//! `dx = r · (h − mean(h) − x̂ · mean(h ⊙ x̂))`, `dγ = Σ_rows g ⊙ x̂`, `dβ = Σ_rows g`.

use super::{column_sums, ROWS};
use crate::model::host::{accumulate, add_from_host, fresh_to_vec, take_output_grad};
use crate::model::params::Affine;
use crate::model::{Act, Dev};
use dfdx::prelude::*;
use rayon::prelude::*;

pub fn layer_norm<T: Tape<f32, Dev>>(x: Act<T>, a: &Affine, eps: f32) -> Act<T> {
    let x = x.contiguous();
    let shape = *x.shape();
    let (n, c) = shape;
    let (gamma, beta) = (a.weight.as_vec(), a.bias.as_vec());
    let mut xhat = fresh_to_vec(&x);
    let mut rstd = vec![0.0f32; n];
    let mut y = vec![0.0f32; n * c];
    xhat.par_chunks_mut(c * ROWS)
        .zip(rstd.par_chunks_mut(ROWS))
        .zip(y.par_chunks_mut(c * ROWS))
        .for_each(|((xs, rs), ys)| {
            for ((row, r), out) in xs.chunks_exact_mut(c).zip(rs).zip(ys.chunks_exact_mut(c)) {
                let mean = row.iter().sum::<f32>() / c as f32;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
                *r = 1.0 / (var + eps).sqrt();
                for (((v, o), g), b) in row.iter_mut().zip(out.iter_mut()).zip(&gamma).zip(&beta) {
                    *v = (*v - mean) * *r;
                    *o = g * *v + b;
                }
            }
        });
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
        let mut gx = vec![0.0f32; n * c];
        accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| {
            dx.par_chunks_mut(c * ROWS)
                .zip(gx.par_chunks_mut(c * ROWS))
                .zip(g.par_chunks(c * ROWS))
                .zip(xhat.par_chunks(c * ROWS))
                .zip(rstd.par_chunks(ROWS))
                .for_each(|((((dxs, gxs), gs), xs), rs)| {
                    let rows = dxs
                        .chunks_exact_mut(c)
                        .zip(gxs.chunks_exact_mut(c))
                        .zip(gs.chunks_exact(c))
                        .zip(xs.chunks_exact(c))
                        .zip(rs);
                    for ((((d, gxr), gr), xr), r) in rows {
                        let (mut m1, mut m2) = (0.0f32, 0.0f32);
                        for ((gi, wi), xi) in gr.iter().zip(&gamma).zip(xr) {
                            let h = gi * wi;
                            m1 += h;
                            m2 += h * xi;
                        }
                        let (m1, m2) = (m1 / c as f32, m2 / c as f32);
                        for ((((di, gxi), gi), wi), xi) in
                            d.iter_mut().zip(gxr.iter_mut()).zip(gr).zip(&gamma).zip(xr)
                        {
                            *di += r * (gi * wi - m1 - xi * m2);
                            *gxi = gi * xi;
                        }
                    }
                })
        })?;
        add_from_host(grads.get_or_alloc_mut(&w_ghost)?, &column_sums(&gx, c))?;
        add_from_host(grads.get_or_alloc_mut(&b_ghost)?, &column_sums(&g, c))
    });
    out.put_tape(tape)
}
