//! Mean softmax cross-entropy of logits against class labels, with the argmax hits counted in
//! the same pass. For MLM this runs over (masked positions × vocabulary) — the largest
//! elementwise tensor of a step — where dfdx's `log_softmax` makes about six passes.
//!
//! Backward: `dlogits = g · (softmax(logits) − onehot(label)) / N`.

use super::ROWS;
use crate::model::host::{add_from_host, copied, take_output_grad, Values};
use crate::model::{Act, Dev};
use dfdx::prelude::*;
use rayon::prelude::*;

/// `(mean loss, how many rows' argmax is the label)`. `logits`: `(N, C)`, `labels`: N classes.
pub fn cross_entropy<T: Tape<f32, Dev>>(
    logits: Act<T>,
    labels: &[usize],
) -> (Tensor<Rank0, f32, Dev, T>, usize) {
    let logits = logits.contiguous();
    let (n, c) = *logits.shape();
    let mut probs = copied(&Values::of(&logits));
    let (loss, correct) = softmax_in_place(&mut probs, c, labels);
    let labels = labels.to_vec();
    let (logits, mut tape) = logits.split_tape();
    let out: Tensor<Rank0, f32, Dev> = logits.device().tensor_from_vec(vec![loss], ());
    let (l_ghost, out_ghost) = (logits.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&l_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?[0] / n as f32;
        probs
            .par_chunks_mut(c * ROWS)
            .enumerate()
            .for_each(|(i, block)| gradient_rows(block, c, &labels[i * ROWS..], g));
        add_from_host(grads.get_or_alloc_mut(&l_ghost)?, &probs)
    });
    (out.put_tape(tape), correct)
}

/// Rows of `c` logits become their softmax, in place; returns the mean loss against `labels`
/// and how many rows' argmax is the label.
pub(super) fn softmax_in_place(probs: &mut [f32], c: usize, labels: &[usize]) -> (f32, usize) {
    // Per row: the loss term and whether the argmax hit.
    let rows: Vec<(f32, bool)> = probs
        .par_chunks_mut(c * ROWS)
        .zip(labels.par_chunks(ROWS))
        .flat_map_iter(|(block, ls)| {
            block
                .chunks_exact_mut(c)
                .zip(ls)
                .map(|(row, &l)| {
                    let (mut arg, mut max) = (0, f32::NEG_INFINITY);
                    for (i, &v) in row.iter().enumerate() {
                        if v > max {
                            (arg, max) = (i, v);
                        }
                    }
                    let target = row[l];
                    let sum = super::vmath::exp_shifted(row, max);
                    let inv = 1.0 / sum;
                    for v in row.iter_mut() {
                        *v *= inv;
                    }
                    (sum.ln() + max - target, arg == l)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let loss = rows.iter().map(|r| r.0).sum::<f32>() / labels.len() as f32;
    (loss, rows.iter().filter(|r| r.1).count())
}

/// Rows of softmax probabilities become the logits' gradient, `g · (p − onehot(label))`, in
/// place; `labels` starts at the block's first row.
pub(super) fn gradient_rows(block: &mut [f32], c: usize, labels: &[usize], g: f32) {
    for (row, &l) in block.chunks_exact_mut(c).zip(labels) {
        row[l] -= 1.0;
        for v in row.iter_mut() {
            *v *= g;
        }
    }
}
