//! Fused operations with hand-written backward passes, added to dfdx's tape through
//! `Tape::add_backward_op`. dfdx builds LayerNorm, bias adds and the attention softmax from
//! several generic kernels, each a pass over memory with a fresh buffer and, on the CPU, on a
//! single thread; these do each in one pass per direction, split over rayon's threads. The
//! CUDA build keeps dfdx's composition, which runs on the device.
//!
//! Reductions over rows (the gradients of biases and LayerNorm's affine) are summed in fixed
//! blocks of rows and the blocks in order, so the result does not depend on how many threads
//! ran: two runs stay bit-identical, and a resumed run equals an uninterrupted one.
//!
//! The ops read their inputs' buffers where they lie (`host::Values`, no copy), so taped inputs
//! first go through dfdx's `contiguous()` — free for an op's output, a copy (with its own
//! backward) for a permuted or broadcast view. Parameters and the residual's untaped input are
//! contiguous by construction; `Values` checks each buffer it reads.
//!
//! `tests/fused.rs` checks every op and its gradients against dfdx's unfused composition.

mod attention;
mod bias;
mod cross_entropy;
mod dropout;
mod embedding;
mod feed_forward;
pub mod gemm;
pub mod gemm_bf16;
mod kept;
mod layer_norm;
mod linear;
mod linear_cross_entropy;
mod residual;
mod rows;
mod self_attention;
pub mod vmath;

pub use attention::attention;
pub use bias::add_bias;
pub use cross_entropy::cross_entropy;
pub use dropout::dropout;
pub use embedding::embed;
pub use feed_forward::feed_forward;
pub use layer_norm::layer_norm;
pub use linear::linear;
pub use linear_cross_entropy::linear_cross_entropy;
pub use residual::{residual_dropout, Residual, Subset};
pub use rows::scatter_rows;
pub use self_attention::self_attention;

use crate::model::precision::Precision;
use gemm::Kept;
use rayon::prelude::*;

/// Rows per parallel task; also the fixed block size of row reductions.
const ROWS: usize = 32;

/// Sums the rows of `m` (rows of `c` values), in fixed blocks (see the module doc).
fn column_sums(m: &[f32], c: usize) -> Vec<f32> {
    let partial: Vec<Vec<f32>> = m.par_chunks(c * ROWS).map(|b| block_sums(b, c)).collect();
    add_partials(partial, c)
}

/// `m` (rows of `c` values) held as `precision`'s products read it, and (when `sums`) its
/// `column_sums`, after `make(start, block)` has made each block of `ROWS` rows in place (the
/// block's first element being `start`): one pass over memory for the three, while each
/// block is in cache.
fn kept_with_sums(
    m: Vec<f32>,
    c: usize,
    precision: Precision,
    sums: bool,
    make: impl Fn(usize, &mut [f32]) + Sync,
) -> (Kept, Option<Vec<f32>>) {
    let (kept, partial) = Kept::visited(m, c * ROWS, precision, |start, block| {
        make(start, block);
        sums.then(|| block_sums(block, c))
    });
    let partial = partial.into_iter().flatten().collect();
    (kept, sums.then(|| add_partials(partial, c)))
}

/// The sums of one block's rows, in row order.
fn block_sums(block: &[f32], c: usize) -> Vec<f32> {
    let mut acc = vec![0.0f32; c];
    for row in block.chunks_exact(c) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    acc
}

/// The blocks' sums added in block order.
fn add_partials(partial: Vec<Vec<f32>>, c: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; c];
    for p in partial {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}
