//! The attention probabilities, `drop(softmax(α · s + m))`, with the scale `α`, the padding
//! bias `m` (one row per sequence, broadcast over heads and queries) and dropout in one op.
//!
//! The dropout mask is drawn from the run's stream exactly as `ops::dropout` draws it (one
//! value per element, row-major), so fusing changes no random draw. Backward, per row with
//! `p` the probabilities before dropout and `k` the keep mask: `u = g ⊙ k`,
//! `ds = α · p ⊙ (u − Σ u ⊙ p)`.

use super::ROWS;
use crate::model::host::{add_from_host, fresh_to_vec};
use crate::model::ops::keep_mask;
use crate::model::{Dev, Matrix};
use crate::rng::Rng;
use dfdx::prelude::*;
use rayon::prelude::*;

type Scores<T> = Tensor<(usize, usize, usize, usize), f32, Dev, T>;

/// `scores`: `(B, A, S, S)`; `mask_bias`: `(B, S)`; dropout with probability `p` when `rng`
/// is given.
pub fn masked_softmax<T: Tape<f32, Dev>>(
    scores: Scores<T>,
    scale: f32,
    mask_bias: &Matrix,
    p: f32,
    rng: Option<&mut Rng>,
) -> Scores<T> {
    let shape = *scores.shape();
    let (_, a, s, s2) = shape;
    let mask = mask_bias.as_vec();
    let keep = match rng {
        Some(rng) if p > 0.0 => Some(keep_mask(shape.num_elements(), p, rng)),
        _ => None,
    };
    let mut probs = fresh_to_vec(&scores);
    probs
        .par_chunks_mut(s2 * ROWS)
        .enumerate()
        .for_each(|(blk, rows)| {
            for (i, row) in rows.chunks_exact_mut(s2).enumerate() {
                let seq = (blk * ROWS + i) / (a * s);
                let m = &mask[seq * s2..(seq + 1) * s2];
                let mut max = f32::NEG_INFINITY;
                for (v, mb) in row.iter_mut().zip(m) {
                    *v = *v * scale + mb;
                    max = max.max(*v);
                }
                let mut sum = 0.0f32;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                for v in row.iter_mut() {
                    *v *= inv;
                }
            }
        });
    let y = match &keep {
        Some(k) => probs.par_iter().zip(k).map(|(p, k)| p * k).collect(),
        None => probs.clone(),
    };
    let (scores, mut tape) = scores.split_tape();
    let out: Scores<NoneTape> = scores.device().tensor_from_vec(y, shape);
    let (s_ghost, out_ghost) = (scores.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&s_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let mut g = fresh_to_vec(&grads.get(&out_ghost));
        if let Some(k) = &keep {
            g.par_iter_mut().zip(k).for_each(|(g, k)| *g *= k);
        }
        g.par_chunks_mut(s2 * ROWS)
            .zip(probs.par_chunks(s2 * ROWS))
            .for_each(|(gs, ps)| {
                for (gr, pr) in gs.chunks_exact_mut(s2).zip(ps.chunks_exact(s2)) {
                    let dot: f32 = gr.iter().zip(pr).map(|(g, p)| g * p).sum();
                    for (gi, pi) in gr.iter_mut().zip(pr) {
                        *gi = scale * pi * (*gi - dot);
                    }
                }
            });
        add_from_host(grads.get_or_alloc_mut(&s_ghost)?, &g)
    });
    out.put_tape(tape)
}
