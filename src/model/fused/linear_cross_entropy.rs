//! A linear layer and the mean cross-entropy of its output as one op: the MLM decoder and its
//! loss, `CE(x Wᵀ + b, labels)`, the same arithmetic as `fused::linear` then
//! `fused::cross_entropy`, bit for bit (`tests/sublayers.rs`). The logits `(masked
//! positions × vocabulary)` are a step's largest activation; composed, they were a dfdx
//! tensor that the loss copied out, and backward a zeroed dfdx gradient the loss added its
//! own into. Here they stay one host vector: the forward product's output, turned into the
//! softmax in place, then into their own gradient in place (each block summed for the bias
//! and, in bf16, rounded as it is made), which the decoder's backward products read.
//!
//! Backward, with `g` the loss's gradient and `p` the softmax: `dlogits = g (p − onehot) / N`,
//! then `fused::linear`'s `dx += dlogits W`, `dW += dlogitsᵀ x`, `db += Σ_rows dlogits`.

use super::cross_entropy::{gradient_rows, softmax_in_place};
use super::gemm::Kept;
use super::kept_with_sums;
use super::linear::{self, finder, Of};
use crate::model::host::{take_output_grad, Values};
use crate::model::precision::products;
use crate::model::{Act, Dev, Matrix, Vector};
use dfdx::prelude::*;

/// `(mean loss, how many rows' argmax is the label)` of the logits `x Wᵀ + b`. `x`: `(N,
/// in)`; `weight`: `(classes, in)`; `bias`: `(classes,)`, if any; `labels`: N classes.
pub fn linear_cross_entropy<T: Tape<f32, Dev>>(
    x: Act<T>,
    weight: &Matrix,
    bias: Option<&Vector>,
    labels: &[usize],
) -> (Tensor<Rank0, f32, Dev, T>, usize) {
    let x = x.contiguous();
    let (n, d_in) = *x.shape();
    let (c, w_in) = *weight.shape();
    assert_eq!(
        d_in, w_in,
        "linear_cross_entropy: input width against the weight's"
    );
    assert_eq!(n, labels.len(), "linear_cross_entropy: a label per row");
    let precision = products();
    let xk = Kept::new(Values::of(&x), precision);
    let w = Values::of(weight);
    let mut probs = linear::forward(&xk, &w, bias, (n, d_in, c), precision);
    let (loss, correct) = softmax_in_place(&mut probs, c, labels);
    let labels = labels.to_vec();
    let (x, mut tape) = x.split_tape();
    let out: Tensor<Rank0, f32, Dev> = x.device().tensor_from_vec(vec![loss], ());
    let (x_ghost, w_ghost, out_ghost) = (x.ghost(), weight.ghost(), out.ghost());
    let b_ghost = bias.map(|b| b.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?[0] / n as f32;
        // `kept_with_sums` hands over blocks of whole rows, `at` being the first's first value.
        let (gk, db) = kept_with_sums(probs, c, precision, b_ghost.is_some(), |at, block| {
            gradient_rows(block, c, &labels[at / c..], g)
        });
        let grad = finder(|grads, of| match (of, &b_ghost) {
            (Of::Input, _) => grads.get_or_alloc_mut(&x_ghost),
            (Of::Weight, _) => grads.get_or_alloc_mut(&w_ghost),
            (Of::Bias, Some(b)) => grads.get_or_alloc_mut(b),
            (Of::Bias, None) => unreachable!("a bias gradient without a bias"),
        });
        linear::backward(grads, grad, (gk, db), &xk, &w, (n, d_in, c), precision)
    });
    (out.put_tape(tape), correct)
}
