//! Multi-head self-attention with the padding mask, as in BERT, and optionally ALiBi's
//! distance penalty (`model.positions = "alibi"`).

use super::fused::Residual;
use super::ops::{dropout, linear};
use super::params::Linear;
use super::{Act, Dev, Matrix, Pass};
use crate::config::ModelConfig;
use crate::model::params::named_params;
use crate::rng::Rng;
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
    pub heads: usize,
    pub dropout: f32,
}

impl Attention {
    /// `cfg.linear_bias` decides whether the four projections have biases.
    pub fn new(dev: &Dev, cfg: &ModelConfig, rng: &mut Rng) -> Self {
        let (hidden, std, bias) = (cfg.hidden, cfg.init_std, cfg.linear_bias);
        let projection = |rng: &mut Rng| Linear::with_bias(dev, hidden, hidden, std, bias, rng);
        Self {
            q: projection(rng),
            k: projection(rng),
            v: projection(rng),
            out: projection(rng),
            heads: cfg.heads,
            dropout: cfg.attention_dropout,
        }
    }

    /// `r.x + drop(attention(x))` for token rows `x` `(B·S, H)`: the sublayer with its
    /// residual connection; `pass.bias` is added to the scores before the softmax. One fused
    /// op on the CPU (`fused::self_attention`); `forward_composed` and `ops::residual` on CUDA.
    /// With `queries` (sorted token rows), the output is those rows only (CPU only).
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        r: Residual,
        pass: &mut Pass,
        queries: Option<&[usize]>,
    ) -> Act<T> {
        #[cfg(not(feature = "cuda"))]
        {
            let layers = [&self.q, &self.k, &self.v, &self.out];
            let dims = (pass.batch, pass.seq, self.heads);
            let rng = pass.mode.reborrow().dropout_rng();
            let p = self.dropout;
            super::fused::self_attention(x, layers, dims, &pass.bias, p, Some(r), rng, queries)
        }
        #[cfg(feature = "cuda")]
        {
            assert!(queries.is_none(), "the CUDA build computes every query");
            let h = self.forward_composed(x, pass);
            super::ops::residual(h, r, pass.mode.reborrow().dropout_rng())
        }
    }

    /// The sublayer (without its residual) as the projections (`linear`) around the attention
    /// core: the CUDA path, and the reference `tests/sublayers.rs` checks the fused op against.
    pub fn forward_composed<T: Tape<f32, Dev>>(&self, x: Act<T>, pass: &mut Pass) -> Act<T> {
        let (x, tape) = x.split_tape();
        let q = linear(x.clone().put_tape(tape), &self.q);
        let k = linear(x.retaped::<T>(), &self.k);
        let v = linear(x.retaped::<T>(), &self.v);
        let dims = (pass.batch, pass.seq, self.heads);
        let rng = pass.mode.reborrow().dropout_rng();
        #[cfg(not(feature = "cuda"))]
        let ctx = super::fused::attention(q, k, v, dims, &pass.bias, self.dropout, rng);
        #[cfg(feature = "cuda")]
        let ctx = core_unfused(q, k, v, dims, &pass.bias, self.dropout, rng);
        linear(ctx, &self.out)
    }
}

/// What is added to the attention scores before the softmax: constants, so no gradient flows
/// into them and the backward pass is the same with or without them.
#[derive(Clone, Debug)]
pub struct ScoreBias {
    /// `(B, S)`: 0 for real keys, `encoder::MASKED_SCORE` for padding.
    pub padding: Matrix,
    /// ALiBi's slope per head (empty without ALiBi): head `h` adds `−slopes[h] · |i − j|` to
    /// the score of query `i` for key `j`.
    pub slopes: Vec<f32>,
}

impl ScoreBias {
    /// The distance penalty as a `(A, S, S)` row-major array, for the unfused reference.
    pub fn distance(&self, heads: usize, s: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; heads * s * s];
        for (hd, block) in out.chunks_exact_mut(s * s).enumerate() {
            let slope = self.slopes.get(hd).copied().unwrap_or(0.0);
            for (i, row) in block.chunks_exact_mut(s).enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = -slope * i.abs_diff(j) as f32;
                }
            }
        }
        out
    }
}

/// ALiBi's head slopes (Press et al. 2022, §3): for a power of two `n`, the geometric sequence
/// `2^(−8/n), 2^(−16/n), …, 2^(−8)`; otherwise the slopes of the power of two below `n`,
/// followed by every other slope of twice that power until there are `n`.
pub fn alibi_slopes(n: usize) -> Vec<f32> {
    let geometric = |m: usize| -> Vec<f32> {
        (1..=m)
            .map(|i| 2f64.powf(-8.0 * i as f64 / m as f64) as f32)
            .collect()
    };
    if n == 0 {
        return Vec::new();
    }
    if n.is_power_of_two() {
        return geometric(n);
    }
    let below = 1 << (usize::BITS - 1 - n.leading_zeros());
    let mut out = geometric(below);
    out.extend(geometric(2 * below).into_iter().step_by(2).take(n - below));
    out
}

/// `drop(softmax(QKᵀ/√D + m)) V` per head from dfdx's ops: the CUDA path, and the reference
/// `tests/fused.rs` checks the fused op against. `q`, `k`, `v`: `(B·S, H)`.
pub fn core_unfused<T: Tape<f32, Dev>>(
    q: Act<T>,
    k: Act<T>,
    v: Act<T>,
    (b, s, a): (usize, usize, usize),
    bias: &ScoreBias,
    p: f32,
    rng: Option<&mut Rng>,
) -> Act<T> {
    let (n, h) = *q.shape();
    let d = h / a;
    // Heads are folded into the batch axis, (B·A, S, D), so each product below is one
    // strided-batched GEMM: dfdx issues one per index of a 4-D tensor's first axis, which on
    // CUDA made the launches grow with the batch (6,144 GEMM launches a step at batch 256).
    let q = q
        .reshape_like(&(b, s, a, d))
        .permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b * a, s, d));
    let k = k
        .reshape_like(&(b, s, a, d))
        .permute::<_, Axes4<0, 2, 3, 1>>()
        .reshape_like(&(b * a, d, s));
    let v = v
        .reshape_like(&(b, s, a, d))
        .permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b * a, s, d));
    let mut scores = (q.matmul(k) * (1.0 / (d as f32).sqrt())).reshape_like(&(b, a, s, s))
        + bias
            .padding
            .clone()
            .broadcast_like::<_, Axes2<1, 2>>(&(b, a, s, s));
    if !bias.slopes.is_empty() {
        let distance: Tensor<(usize, usize, usize), f32, Dev> = bias
            .padding
            .device()
            .tensor_from_vec(bias.distance(a, s), (a, s, s));
        scores = scores + distance.broadcast_like::<_, Axis<0>>(&(b, a, s, s));
    }
    let probs = dropout(scores.softmax::<Axis<3>>(), p, rng).reshape_like(&(b * a, s, s));
    probs
        .matmul(v)
        .reshape_like(&(b, a, s, d))
        .permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(n, h))
}

named_params!(Attention { q => "q", k => "k", v => "v", out => "out" });
