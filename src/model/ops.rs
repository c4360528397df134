//! The small building blocks of the forward pass, written once over dfdx ops.

use super::fused::Residual;
use super::params::{Affine, Linear};
use super::{Act, Dev, Matrix, Vector};
use crate::rng::Rng;
use dfdx::prelude::*;
use rand::Rng as _;

/// `x Wᵀ + b` (or `x Wᵀ` without a bias) on token rows `(N, in)`.
pub fn linear<T: Tape<f32, Dev>>(x: Act<T>, l: &Linear) -> Act<T> {
    project(x, &l.weight, l.bias.as_ref())
}

/// `x Wᵀ + b` for any weight matrix `(out, in)`: a linear layer, or the MLM decoder tied to
/// the word embeddings. Our fused op on the CPU; dfdx's matmul and broadcast add on CUDA,
/// where dfdx's kernels already run on the device.
pub fn project<T: Tape<f32, Dev>>(x: Act<T>, weight: &Matrix, bias: Option<&Vector>) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::linear(x, weight, bias);
    #[cfg(feature = "cuda")]
    {
        let y = x.matmul(weight.clone().permute::<_, Axes2<1, 0>>());
        match bias {
            Some(b) => add_bias(y, b),
            None => y,
        }
    }
}

/// The feed-forward sublayer with its residual connection, `r.x + drop(down(gelu(up(x))))`:
/// one fused op on the CPU, the composition of `linear`, `gelu` and `residual` on CUDA.
pub fn feed_forward<T: Tape<f32, Dev>>(
    x: Act<T>,
    up: &Linear,
    down: &Linear,
    r: Residual,
    rng: Option<&mut Rng>,
) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::feed_forward(x, up, down, Some(r), rng);
    #[cfg(feature = "cuda")]
    residual(feed_forward_unfused(x, up, down), r, rng)
}

/// A residual connection `r.x + drop(h)`: fused on the CPU, dfdx's ops on CUDA.
pub fn residual<T: Tape<f32, Dev>>(h: Act<T>, r: Residual, rng: Option<&mut Rng>) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::residual_dropout(h, r.x, r.p, rng);
    #[cfg(feature = "cuda")]
    {
        assert!(r.rows.is_none(), "the CUDA build computes every row");
        dropout(h, r.p, rng) + r.x.clone()
    }
}

/// The feed-forward sublayer (without its residual) composed of `linear` and `gelu`: the
/// CUDA path, and the reference `tests/sublayers.rs` checks the fused op against.
pub fn feed_forward_unfused<T: Tape<f32, Dev>>(x: Act<T>, up: &Linear, down: &Linear) -> Act<T> {
    linear(super::gelu::gelu(linear(x, up)), down)
}

/// `project` from dfdx's ops: the reference `tests/fused.rs` checks the fused one against.
pub fn project_unfused<T: Tape<f32, Dev>>(
    x: Act<T>,
    weight: &Matrix,
    bias: Option<&Vector>,
) -> Act<T> {
    let y = x.matmul(weight.clone().permute::<_, Axes2<1, 0>>());
    let shape = *y.shape();
    match bias {
        Some(b) => y + b.clone().broadcast_like::<_, Axis<0>>(&shape),
        None => y,
    }
}

/// The sum of table rows `tables[k].0[tables[k].1[r]]` for each token `r`, in the tables'
/// order (the embeddings: word, position, token type): fused on the CPU, dfdx's gathers and
/// adds on CUDA.
pub fn embed<T: Tape<f32, Dev>>(tape: T, dev: &Dev, tables: &[(&Matrix, &[usize])]) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::embed(tape, dev, tables);
    #[cfg(feature = "cuda")]
    embed_unfused(tape, dev, tables)
}

/// `embed` from dfdx's gathers and adds: the reference `tests/embedding.rs` checks the fused
/// one against, bit for bit.
pub fn embed_unfused<T: Tape<f32, Dev>>(
    tape: T,
    dev: &Dev,
    tables: &[(&Matrix, &[usize])],
) -> Act<T> {
    let rows = |idx: &[usize]| -> Tensor<(usize,), usize, Dev> {
        dev.tensor_from_vec(idx.to_vec(), (idx.len(),))
    };
    let (first, idx) = tables[0];
    let mut x = first.clone().put_tape(tape).gather(rows(idx));
    for (t, idx) in &tables[1..] {
        x = x + t.retaped::<T>().gather(rows(idx));
    }
    x
}

/// `x + b` over token rows: fused on the CPU, dfdx's broadcast add on CUDA.
pub fn add_bias<T: Tape<f32, Dev>>(x: Act<T>, b: &Vector) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::add_bias(x, b);
    #[cfg(feature = "cuda")]
    {
        let shape = *x.shape();
        x + b.clone().broadcast_like::<_, Axis<0>>(&shape)
    }
}

/// LayerNorm over the hidden axis of token rows (fused on the CPU, as `linear`).
pub fn layer_norm<T: Tape<f32, Dev>>(x: Act<T>, a: &Affine, eps: f32) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::layer_norm(x, a, eps);
    #[cfg(feature = "cuda")]
    layer_norm_unfused(x, a, eps)
}

/// LayerNorm from dfdx's own ops: the reference `tests/fused.rs` checks the fused one against.
pub fn layer_norm_unfused<T: Tape<f32, Dev>>(x: Act<T>, a: &Affine, eps: f32) -> Act<T> {
    let shape = *x.shape();
    let z = x.normalize::<Axis<1>>(eps);
    z * a.weight.clone().broadcast_like::<_, Axis<0>>(&shape)
        + a.bias.clone().broadcast_like::<_, Axis<0>>(&shape)
}

/// `γ ⊙ z + β` for an already normalised `z`.
pub fn affine<T: Tape<f32, Dev>>(z: Act<T>, a: &Affine) -> Act<T> {
    let shape = *z.shape();
    z * a.weight.clone().broadcast_like::<_, Axis<0>>(&shape)
        + a.bias.clone().broadcast_like::<_, Axis<0>>(&shape)
}

/// An inverted-dropout keep mask drawn from the run's `model.dropout` stream rather than
/// dfdx's device RNG, whose state a checkpoint cannot save: resume stays bit-identical.
///
/// Element `i` is decided by word `w₀ + i` of the ChaCha stream (`gen::<f32>` reads one 32-bit
/// word), and ChaCha can seek, so blocks of the mask are drawn on rayon's threads, each from
/// its own position: the mask is the one a sequential draw gives, bit for bit.
pub fn keep_mask(len: usize, p: f32, rng: &mut Rng) -> Vec<f32> {
    mask_of(len, p, rng, 0.0, 1.0 / (1.0 - p))
}

/// The decisions of `keep_mask` as `drop` and `keep` values of any type: the CUDA build draws
/// them as bytes (a quarter of the bytes to write and to copy to the device) and scales them
/// there, to the same values.
pub fn mask_of<T: Copy + Send + Sync>(
    len: usize,
    p: f32,
    rng: &mut Rng,
    drop: T,
    keep: T,
) -> Vec<T> {
    const BLOCK: usize = 1 << 16;
    let threshold = drop_threshold(p);
    let start = rng.get_word_pos();
    // SAFETY: every element of every block is written.
    let mask = unsafe {
        crate::model::host::written(len, BLOCK, |at, block| {
            let mut words = [0u32; 1024];
            for (j, part) in block.chunks_mut(words.len()).enumerate() {
                let words = &mut words[..part.len()];
                // The words `next_u32` would return, in order.
                crate::rng::words_at(rng, start + (at + j * 1024) as u128, words);
                for (m, &w) in part.iter_mut().zip(words.iter()) {
                    m.write(if w >> 8 < threshold { drop } else { keep });
                }
            }
        })
    };
    rng.set_word_pos(start + len as u128);
    mask
}

/// `gen::<f32>()` is `(w >> 8) · 2⁻²⁴` for the next word `w`, so `gen::<f32>() < p` is
/// `w >> 8 < ⌈p · 2²⁴⌉` exactly (p · 2²⁴ is exact in f64): an integer test that vectorises.
fn drop_threshold(p: f32) -> u32 {
    (p as f64 * (1u64 << 24) as f64).ceil() as u32
}

/// The rows `rows` of `keep_mask(total · width, p, rng)` read as `(total, width)`, drawn
/// alone: each row from its own place in the stream, which then moves past the whole mask, so
/// the draws that follow are those that follow the whole mask. The last block, computing only
/// the rows the objectives read (`Encoder::forward_rows`), drops out what the whole block
/// would have.
pub fn keep_mask_rows(
    rows: &[usize],
    width: usize,
    total: usize,
    p: f32,
    rng: &mut Rng,
) -> Vec<f32> {
    use rayon::prelude::*;
    let (threshold, scale) = (drop_threshold(p), 1.0 / (1.0 - p));
    let start = rng.get_word_pos();
    let mut mask = vec![0.0f32; rows.len() * width];
    let stream = &*rng;
    mask.par_chunks_mut(width.max(1)).zip(rows).for_each_init(
        || vec![0u32; width],
        |words, (out, &row)| {
            crate::rng::words_at(stream, start + (row * width) as u128, words);
            for (m, &w) in out.iter_mut().zip(words.iter()) {
                *m = if w >> 8 < threshold { 0.0 } else { scale };
            }
        },
    );
    rng.set_word_pos(start + (total * width) as u128);
    mask
}

/// `keep_mask` drawn one element after another: the definition the parallel one must equal.
pub fn keep_mask_sequential(len: usize, p: f32, rng: &mut Rng) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    (0..len)
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
        .collect()
}

/// Dropout with probability `p` when `rng` is given (training), identity otherwise.
pub fn dropout<S: Shape, T: Tape<f32, Dev>>(
    x: Tensor<S, f32, Dev, T>,
    p: f32,
    rng: Option<&mut Rng>,
) -> Tensor<S, f32, Dev, T> {
    match rng {
        Some(rng) if p > 0.0 => {
            #[cfg(not(feature = "cuda"))]
            return super::fused::dropout(x, p, rng);
            // Bytes cross the bus and become `keep_mask`'s values on the device (1 · scale is
            // scale exactly): the masks of a CPU run, a quarter of the copy.
            #[cfg(feature = "cuda")]
            {
                let shape = *x.shape();
                let flags = mask_of(shape.num_elements(), p, rng, 0u8, 1u8);
                let flags: Tensor<S, u8, Dev> = x.device().tensor_from_vec(flags, shape);
                x * (flags.to_dtype::<f32>() * (1.0 / (1.0 - p)))
            }
        }
        _ => x,
    }
}

/// `dropout` as dfdx's product with the mask as a tensor: the reference `tests/fused.rs`
/// checks the fused one against, bit for bit.
pub fn dropout_unfused<S: Shape, T: Tape<f32, Dev>>(
    x: Tensor<S, f32, Dev, T>,
    p: f32,
    rng: &mut Rng,
) -> Tensor<S, f32, Dev, T> {
    let shape = *x.shape();
    let m: Tensor<S, f32, Dev> = x
        .device()
        .tensor_from_vec(keep_mask(shape.num_elements(), p, rng), shape);
    x * m
}

/// Mean cross-entropy of `logits` `(N, C)` against class `labels` from dfdx's ops (the label's
/// entry of each log-softmax row), and how many rows have their label's logit at the row's
/// maximum (ties count as hits, as in `fused::cross_entropy`). The CUDA path: only the
/// labels go to the device and 2·N numbers come back, where a one-hot target and the full
/// logits used to cross the bus.
pub fn cross_entropy_device<T: Tape<f32, Dev>>(
    logits: Act<T>,
    labels: &[usize],
) -> (Tensor<Rank0, f32, Dev, T>, usize) {
    let n = labels.len();
    let idx: Tensor<(usize,), usize, Dev> = logits.device().tensor_from_vec(labels.to_vec(), (n,));
    let plain = logits.retaped::<NoneTape>();
    let best = plain.clone().max::<(usize,), Axis<1>>().as_vec();
    let at_label = plain.select(idx.clone()).as_vec();
    let correct = best.iter().zip(&at_label).filter(|(b, l)| l >= b).count();
    let loss = logits.log_softmax::<Axis<1>>().select(idx).mean().negate();
    (loss, correct)
}
