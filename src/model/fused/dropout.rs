//! Dropout as one op on the CPU: dfdx's `x * mask` runs its forward product and its backward
//! one on the calling thread, where the embeddings' dropout (an `(N, H)` pass each way) kept
//! the other cores waiting. The mask is `keep_mask`'s, so fusing changes no random draw, and
//! the arithmetic is dfdx's (`x · k` forward, `dx += g · k` backward), bit for bit
//! (`tests/fused.rs`).

use crate::model::host::{copied, elementwise, Values};
use crate::model::ops::keep_mask;
use crate::model::Dev;
use crate::rng::Rng;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Elements per parallel task (elementwise: any split gives the same bits).
const CHUNK: usize = 1 << 14;

/// `x ⊙ keep_mask(p)`, the mask drawn from `rng`.
pub fn dropout<S: Shape, T: Tape<f32, Dev>>(
    x: Tensor<S, f32, Dev, T>,
    p: f32,
    rng: &mut Rng,
) -> Tensor<S, f32, Dev, T> {
    let x = x.contiguous();
    let shape = *x.shape();
    let keep = keep_mask(shape.num_elements(), p, rng);
    let mut y = copied(&Values::of(&x));
    y.par_chunks_mut(CHUNK)
        .zip(keep.par_chunks(CHUNK))
        .for_each(|(y, k)| y.iter_mut().zip(k).for_each(|(y, k)| *y *= k));
    elementwise(x, y, move |dx, g| {
        dx.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(keep.par_chunks(CHUNK))
            .for_each(|((d, g), k)| {
                for ((d, g), k) in d.iter_mut().zip(g).zip(k) {
                    *d += g * k;
                }
            })
    })
}
