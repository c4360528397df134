//! The core of multi-head self-attention in one op. Per sequence `b` and head `h`:
//!
//! ```text
//! P = softmax(α · Q Kᵀ + m_b + A_h)  α = 1/√D, m_b the padding bias of sequence b,
//!                                    A_h[i][j] = −slope_h · |i − j| (ALiBi; 0 without it)
//! C = drop(P) V
//! ```
//!
//! Q, K and V are read where the projections wrote them — token rows `(B·S, H)` with the heads
//! side by side along the hidden axis — through strided matrix views, and C is written the same
//! way. dfdx would copy Q, K and V into `(B, A, S, D)` permutations, run the B·A small products
//! one after another (each split over every thread, so the threads meet B·A times per product),
//! and copy C back. Here one sequence is one task, its products single-threaded.
//!
//! The dropout mask is drawn exactly as `ops::dropout` draws it over the `(B, A, S, S)`
//! probabilities, so fusing changes no random draw. With some query rows only (the last
//! block's, `Encoder::forward_rows`), Q, C and the probabilities hold those rows, and the
//! mask is those rows of the whole one (`ops::keep_mask_rows`). Backward, with `P' = P ⊙ keep`:
//! `dV = P'ᵀ dC`, `dP = (dC Vᵀ) ⊙ keep`, `dS = α · P ⊙ (dP − rowsum(dP ⊙ P))`,
//! `dQ = dS K`, `dK = dSᵀ Q`.

use super::gemm::{Kept, Operand, View};
use crate::model::attention::ScoreBias;
use crate::model::host::{add_from_host, take_output_grad, Values};
use crate::model::ops::{keep_mask, keep_mask_rows};
use crate::model::precision::{products, Precision};
use crate::model::{Act, Dev};
use crate::rng::Rng;
use dfdx::prelude::*;
use rayon::prelude::*;
use rayon::slice::ChunksMut;
use std::mem::MaybeUninit;

/// `dst = β · a b` at `offset` with row stride `rs` in `precision`, single-threaded (the
/// caller parallelises over sequences), into values that may be uninitialised: the
/// attention's buffers are written whole, head by head, and never filled first.
fn matmul<'a, 'b>(
    dst: &mut [MaybeUninit<f32>],
    offset: usize,
    rs: usize,
    a: impl std::convert::Into<Operand<'a>>,
    b: impl std::convert::Into<Operand<'b>>,
    beta: f32,
    precision: Precision,
) {
    super::gemm::product_into(dst, offset, rs, a, b, beta, false, precision);
}

/// `v`, all of whose values a product has written.
///
/// # Safety
/// Every element of `v` must have been written.
unsafe fn written(v: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: the caller's promise; `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(v as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// A vector of `len` values for the loops below to write whole.
fn unfilled(len: usize) -> Vec<f32> {
    Vec::with_capacity(len)
}

/// The values of a vector from `unfilled`, now written.
///
/// # Safety
/// The loop must have written each of the first `len` values.
unsafe fn filled(mut v: Vec<f32>, len: usize) -> Vec<f32> {
    // SAFETY: the caller's promise, and `unfilled` reserved `len`.
    unsafe { v.set_len(len) };
    v
}

/// What the forward pass keeps for the backward one.
pub(super) struct Saved {
    q: Kept,
    k: Kept,
    v: Kept,
    /// Softmax probabilities before dropout, `(B, A, S, S)` (`(B, A, S_b, S)` for the
    /// queries `S_b` of each sequence).
    probs: Vec<f32>,
    keep: Option<Vec<f32>>,
    queries: Queries,
    /// `(B, S, A, D)` and `α`.
    dims: (usize, usize, usize, usize),
    scale: f32,
    /// The precision of the forward products, which the backward ones keep.
    precision: Precision,
}

/// The query rows the core computes: every token's, or some (the last block's, when the
/// objectives read some rows only: `Encoder::forward_rows`), sequence by sequence.
pub(super) struct Queries {
    /// Where each sequence's queries start among the rows computed (`B + 1` entries).
    starts: Vec<usize>,
    /// Each query's position in its sequence.
    positions: Vec<usize>,
}

impl Queries {
    /// `rows` (sorted flat token rows `b·S + i`) of `batch` sequences of `seq`, or all.
    pub(super) fn new(rows: Option<&[usize]>, batch: usize, seq: usize) -> Self {
        match rows {
            None => Self {
                starts: (0..=batch).map(|b| b * seq).collect(),
                positions: (0..batch * seq).map(|r| r % seq).collect(),
            },
            Some(rows) => Self {
                starts: (0..=batch)
                    .map(|b| rows.partition_point(|&r| r < b * seq))
                    .collect(),
                positions: rows.iter().map(|r| r % seq).collect(),
            },
        }
    }

    fn len(&self) -> usize {
        self.positions.len()
    }

    /// Sequence `b`'s queries: where they start among the rows, and how many.
    fn of(&self, b: usize) -> (usize, usize) {
        (self.starts[b], self.starts[b + 1] - self.starts[b])
    }

    /// The dropout mask over the `(B, A, S_b, S)` probabilities: the rows of the whole
    /// `(B, A, S, S)` mask these queries read, the stream moved past the whole mask.
    fn keep_mask(&self, (batch, s, a): (usize, usize, usize), p: f32, rng: &mut Rng) -> Vec<f32> {
        if self.len() == batch * s {
            return keep_mask(batch * a * s * s, p, rng);
        }
        let mut rows = Vec::with_capacity(a * self.len());
        for b in 0..batch {
            let (at, m) = self.of(b);
            for hd in 0..a {
                let first = (b * a + hd) * s;
                rows.extend(self.positions[at..at + m].iter().map(|i| first + i));
            }
        }
        keep_mask_rows(&rows, s, batch * a * s, p, rng)
    }
}

/// `v` cut into consecutive parts of the given lengths, for a parallel loop over them.
fn parts<T>(mut v: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (part, rest) = std::mem::take(&mut v).split_at_mut(len);
        out.push(part);
        v = rest;
    }
    out
}

/// The attention context `(B·S, H)` from the projections `q`, `k`, `v` (each `(B·S, H)`).
#[allow(clippy::too_many_arguments)]
pub fn attention<T: Tape<f32, Dev>>(
    q: Act<T>,
    k: Act<T>,
    v: Act<T>,
    (batch, seq, heads): (usize, usize, usize),
    bias: &ScoreBias,
    p: f32,
    rng: Option<&mut Rng>,
) -> Act<T> {
    // Views (permuted, broadcast) become contiguous copies; op outputs pass through free.
    let (q, k, v) = (q.contiguous(), k.contiguous(), v.contiguous());
    let (n, h) = *q.shape();
    let precision = products();
    let [qv, kv, vv] = [&q, &k, &v].map(|t| Kept::new(Values::of(t), precision));
    let dims = (batch, seq, heads);
    let (ctx, saved) = forward([qv, kv, vv], dims, None, bias, p, rng, precision);
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let out: Act<NoneTape> = q.device().tensor_from_vec(ctx, (n, h));
    let ghosts = (q.ghost(), k.ghost(), v.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        let (q_ghost, k_ghost, v_ghost, out_ghost) = &ghosts;
        for g in [q_ghost, k_ghost, v_ghost, out_ghost] {
            grads.try_alloc_for(g)?;
        }
        let g = Kept::new(
            take_output_grad(grads.get_or_alloc_mut(out_ghost)?)?,
            precision,
        );
        let (dq, dk, dv) = backward(&saved, &g);
        add_from_host(grads.get_or_alloc_mut(q_ghost)?, &dq)?;
        add_from_host(grads.get_or_alloc_mut(k_ghost)?, &dk)?;
        add_from_host(grads.get_or_alloc_mut(v_ghost)?, &dv)
    });
    out.put_tape(tape)
}

/// The context `(B·S, H)` from Q, K and V held as their products read them, and what the
/// backward pass needs; the dropout mask is drawn here, from `rng`. With `queries`, Q holds
/// those rows only, and so does the context.
pub(super) fn forward(
    [qv, kv, vv]: [Kept; 3],
    (batch, seq, heads): (usize, usize, usize),
    queries: Option<&[usize]>,
    bias: &ScoreBias,
    p: f32,
    rng: Option<&mut Rng>,
    precision: Precision,
) -> (Vec<f32>, Saved) {
    let n = batch * seq;
    let h = kv.len() / n;
    assert_eq!(h * n, kv.len(), "token rows");
    let (s, a, d) = (seq, heads, h / heads);
    let asked = Queries::new(queries, batch, s);
    let queries = &asked;
    let m = queries.len();
    assert_eq!(m * h, qv.len(), "a query row per row asked for");
    // The heads write the context whole (its buffer is never filled first).
    assert_eq!(a * d, h, "the hidden width is a multiple of the heads");
    let scale = 1.0 / (d as f32).sqrt();
    let keep = match rng {
        Some(rng) if p > 0.0 => Some(queries.keep_mask((batch, s, a), p, rng)),
        _ => None,
    };
    let mask = bias.padding.as_vec();
    // Only the host slopes enter the parallel loop (a device tensor need not be `Sync`).
    let slopes = bias.slopes.as_slice();
    let (mut probs, mut ctx) = (unfilled(a * m * s), unfilled(m * h));
    let lens = |w: usize| (0..batch).map(move |b| queries.of(b).1 * w);
    let ctx_parts = parts(&mut ctx.spare_capacity_mut()[..m * h], lens(h));
    let prob_parts = parts(&mut probs.spare_capacity_mut()[..a * m * s], lens(a * s));
    ctx_parts
        .into_par_iter()
        .zip(prob_parts)
        .enumerate()
        .for_each(|(b, (ctx_b, probs_b))| {
            let (first, mb) = queries.of(b);
            if mb == 0 {
                // Nothing to write: the sequence has no query.
                return;
            }
            let positions = &queries.positions[first..first + mb];
            let mut dropped = vec![0.0f32; mb * s];
            for hd in 0..a {
                let at = b * s * h + hd * d;
                let pr = &mut probs_b[hd * mb * s..(hd + 1) * mb * s];
                let qh = qv.view(first * h + hd * d, (mb, d), h);
                let kh = kv.view(at, (s, d), h);
                matmul(pr, 0, s, qh, kh.t(), scale, precision);
                // SAFETY: the product wrote the head's `(S_b, S)` scores whole.
                let pr = unsafe { written(pr) };
                let pad = &mask[b * s..(b + 1) * s];
                let slope = slopes.get(hd).copied().unwrap_or(0.0);
                for (row, &i) in pr.chunks_exact_mut(s).zip(positions) {
                    softmax_row(row, pad, slope, i);
                }
                let used: &[f32] = match &keep {
                    Some(kp) => {
                        let blk = (a * first + hd * mb) * s;
                        let kb = &kp[blk..blk + mb * s];
                        for ((o, p), k) in dropped.iter_mut().zip(pr.iter()).zip(kb) {
                            *o = p * k;
                        }
                        &dropped
                    }
                    None => pr,
                };
                let vh = vv.view(at, (s, d), h);
                matmul(
                    ctx_b,
                    hd * d,
                    h,
                    View::new(used, 0, (mb, s), s),
                    vh,
                    1.0,
                    precision,
                );
            }
        });
    // SAFETY: each sequence's block of both was written whole, head by head (`a · d = h`).
    let (probs, ctx) = unsafe { (filled(probs, a * m * s), filled(ctx, m * h)) };
    let saved = Saved {
        q: qv,
        k: kv,
        v: vv,
        probs,
        keep,
        queries: asked,
        dims: (batch, s, a, d),
        scale,
        precision,
    };
    (ctx, saved)
}

/// `row ← softmax(row + m − slope · |i − j|)` for query `i`; `row` already holds the scaled
/// scores. Without ALiBi (`slope` 0) nothing but the padding bias is added.
fn softmax_row(row: &mut [f32], m: &[f32], slope: f32, i: usize) {
    if slope == 0.0 {
        for (v, mb) in row.iter_mut().zip(m) {
            *v += mb;
        }
    } else {
        for (j, (v, mb)) in row.iter_mut().zip(m).enumerate() {
            *v += mb - slope * i.abs_diff(j) as f32;
        }
    }
    let max = super::vmath::max(row);
    let inv = 1.0 / super::vmath::exp_shifted(row, max);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `(dQ, dK, dV)` from the context's gradient `g` (dQ and `g` of the query rows).
pub(super) fn backward(sv: &Saved, g: &Kept) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (batch, s, a, d) = sv.dims;
    let scale = sv.scale;
    let precision = sv.precision;
    let h = a * d;
    let n = batch * s;
    let queries = &sv.queries;
    let m = queries.len();
    let (mut dq, mut dk, mut dv) = (unfilled(m * h), unfilled(n * h), unfilled(n * h));
    fn blocks(v: &mut Vec<f32>, len: usize, block: usize) -> ChunksMut<'_, MaybeUninit<f32>> {
        v.spare_capacity_mut()[..len].par_chunks_mut(block)
    }
    let dq_parts = parts(
        &mut dq.spare_capacity_mut()[..m * h],
        (0..batch).map(|b| queries.of(b).1 * h),
    );
    dq_parts
        .into_par_iter()
        .zip(blocks(&mut dk, n * h, s * h))
        .zip(blocks(&mut dv, n * h, s * h))
        .enumerate()
        .for_each(|(b, ((dq_b, dk_b), dv_b))| {
            let (first, mb) = queries.of(b);
            if mb == 0 {
                // No query reads this sequence's keys and values.
                dk_b.fill(MaybeUninit::new(0.0));
                dv_b.fill(MaybeUninit::new(0.0));
                return;
            }
            let mut dropped = vec![0.0f32; mb * s];
            let mut dp = vec![MaybeUninit::new(0.0f32); mb * s];
            for hd in 0..a {
                let at = b * s * h + hd * d;
                let blk = (a * first + hd * mb) * s;
                let pr = &sv.probs[blk..blk + mb * s];
                let kb = sv.keep.as_ref().map(|k| &k[blk..blk + mb * s]);
                let used: &[f32] = match kb {
                    Some(kb) => {
                        for ((o, p), k) in dropped.iter_mut().zip(pr).zip(kb) {
                            *o = p * k;
                        }
                        &dropped
                    }
                    None => pr,
                };
                let gh = g.view(first * h + hd * d, (mb, d), h);
                // dV = P'ᵀ dC
                matmul(
                    dv_b,
                    hd * d,
                    h,
                    View::new(used, 0, (mb, s), s).t(),
                    gh,
                    1.0,
                    precision,
                );
                // dP = (dC Vᵀ) ⊙ keep
                let vh = sv.v.view(at, (s, d), h);
                matmul(&mut dp, 0, s, gh, vh.t(), 1.0, precision);
                // SAFETY: `dp` was initialised when made (and is overwritten whole here).
                let dp = unsafe { written(&mut dp) };
                if let Some(kb) = kb {
                    for (x, k) in dp.iter_mut().zip(kb) {
                        *x *= k;
                    }
                }
                // dS = α · P ⊙ (dP − rowsum(dP ⊙ P))
                for (dr, prow) in dp.chunks_exact_mut(s).zip(pr.chunks_exact(s)) {
                    let dot = super::vmath::dot(dr, prow);
                    for (x, p) in dr.iter_mut().zip(prow) {
                        *x = scale * p * (*x - dot);
                    }
                }
                let ds = View::new(dp, 0, (mb, s), s);
                // dQ = dS K, dK = dSᵀ Q
                matmul(
                    dq_b,
                    hd * d,
                    h,
                    ds,
                    sv.k.view(at, (s, d), h),
                    1.0,
                    precision,
                );
                matmul(
                    dk_b,
                    hd * d,
                    h,
                    ds.t(),
                    sv.q.view(first * h + hd * d, (mb, d), h),
                    1.0,
                    precision,
                );
            }
        });
    // SAFETY: each sequence's block of the three was written whole, head by head.
    unsafe { (filled(dq, m * h), filled(dk, n * h), filled(dv, n * h)) }
}
