//! PowerNorm (Shen, Yao, Gholami, Mahoney, Keutzer, ICML 2020), as in the paper's official
//! `MaskPowerNorm`: a batch normalisation for Transformers without mean subtraction.
//!
//! For token rows `x` (N × C), with `R` the real (non-padding) rows and `|R| = n`:
//!
//! 1. Group scaling (per token, per channel group `G`):  `x̂ = x / sqrt(mean_{c∈G} x_c² + ε)`
//!    — ordinary ops, exact autograd.
//! 2. Quadratic mean over the batch, per channel: `ψ²_c = (1/n) Σ_{i∈R} x̂_ic²`.
//! 3. Forward: during warm-up (`iter ≤ warmup`) `z = x̂ / sqrt(ψ² + ε)`; afterwards the running
//!    statistic is used, `z = x̂ / sqrt(φ + ε)`. Eval always uses `φ`.
//! 4. Running statistic: during warm-up a cumulative average `φ ← φ·(t−1)/t + ψ²/t`, and at
//!    every step `φ ← α_f φ + (1 − α_f) ψ²` (both lines as the official code runs them).
//! 5. Approximate backward (the paper's Eq. 7–8, official code): with `g = ∂L/∂z`,
//!    `g̃ = g − (1 − α_b)·Γ·z`, then `Γ ← Γ + (1/n) Σ_{i∈R} g̃_i z_i` (per channel), and
//!    `∂L/∂x̂ = g̃ / sqrt(ψ² + ε)`. `Γ` replaces the batch mean of `g·z` that the exact
//!    gradient of step 3 would subtract, so the backward costs no extra batch reduction.
//! 6. `y = γ ⊙ z + β` — ordinary ops.
//!
//! One difference from the official code, kept on purpose: it averages `g̃·z` over padding
//! positions too; here every batch statistic (forward and backward) covers real tokens only,
//! so padding never leaks into the statistics.
//!
//! `BackwardMode::Exact` swaps step 5 for the true gradient of step 3; the gradient checks use it,
//! and the tests show that the approximate backward equals it when `Γ` holds the batch's own
//! mean of `g·z` and `α_b = 0`.

use super::params::Affine;
use super::{ops, Act, Dev};
use crate::config::PowerNormConfig;
use crate::model::params::{named_params, RunningState};
use dfdx::prelude::*;
use num_traits::Float;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackwardMode {
    Approximate,
    Exact,
}

/// Running statistics, updated by the forward (`phi`) and the backward (`ema_gz`) passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub running_phi: Vec<f32>,
    pub ema_gz: Vec<f32>,
    pub iters: u64,
}

#[derive(Debug)]
pub struct PowerNorm {
    pub affine: Affine,
    pub cfg: PowerNormConfig,
    pub backward: BackwardMode,
    /// Shared with the backward closures of the current step, which update `ema_gz`.
    pub stats: Arc<Mutex<Stats>>,
}

impl Clone for PowerNorm {
    /// A deep copy: a cloned model must not share running statistics with its source.
    fn clone(&self) -> Self {
        Self {
            affine: self.affine.clone(),
            cfg: self.cfg.clone(),
            backward: self.backward,
            stats: Arc::new(Mutex::new(self.stats())),
        }
    }
}

impl PowerNorm {
    pub fn new(dev: &Dev, channels: usize, cfg: &PowerNormConfig) -> Self {
        Self {
            affine: Affine::new(dev, channels),
            cfg: cfg.clone(),
            backward: BackwardMode::Approximate,
            stats: Arc::new(Mutex::new(Stats {
                running_phi: vec![1.0; channels],
                ema_gz: vec![0.0; channels],
                iters: 0,
            })),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_stats(&self, s: Stats) {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Normalises token rows `x` (N × C); `real[i]` tells whether row `i` is a real token.
    /// `train` selects batch statistics and updates the running ones.
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        real: &Arc<Vec<bool>>,
        train: bool,
    ) -> Act<T> {
        let x = self.group_scale(x);
        let z = if train {
            self.power_function(x, real)
        } else {
            self.eval_scale(x)
        };
        ops::affine(z, &self.affine)
    }

    fn group_scale<T: Tape<f32, Dev>>(&self, x: Act<T>) -> Act<T> {
        let (n, c) = *x.shape();
        let g = self.cfg.groups;
        let xs = x.reshape_like(&(n, g, c / g));
        let (xs, tape) = xs.split_tape();
        let inv = (xs
            .clone()
            .put_tape(tape)
            .square()
            .mean::<(usize, usize), Axis<2>>()
            + self.cfg.eps)
            .sqrt()
            .recip();
        let y = inv.broadcast_like::<_, Axis<2>>(&(n, g, c / g)) * xs;
        y.reshape_like(&(n, c))
    }

    fn eval_scale<T: Tape<f32, Dev>>(&self, x: Act<T>) -> Act<T> {
        let shape = *x.shape();
        let s = self.stats();
        let inv: Vec<f32> = s
            .running_phi
            .iter()
            .map(|p| 1.0 / (p + self.cfg.eps).sqrt())
            .collect();
        let inv: Tensor<(usize,), f32, Dev> = x.device().tensor_from_vec(inv, (shape.1,));
        x * inv.broadcast_like::<_, Axis<0>>(&shape)
    }

    fn power_function<T: Tape<f32, Dev>>(&self, x: Act<T>, real: &Arc<Vec<bool>>) -> Act<T> {
        let (n, c) = *x.shape();
        let xv = x.as_vec();
        let eps = self.cfg.eps;
        let n_real = real.iter().filter(|&&r| r).count().max(1);
        let mut var = vec![0.0f32; c];
        for (i, row) in xv.chunks_exact(c).enumerate() {
            if real[i] {
                for (v, &xi) in var.iter_mut().zip(row) {
                    *v += xi * xi;
                }
            }
        }
        var.iter_mut().for_each(|v| *v /= n_real as f32);
        let batch_scale: Vec<f32> = var.iter().map(|v| (v + eps).sqrt()).collect();

        let (used_batch, used_scale) = {
            let mut st = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            st.iters += 1;
            let t = st.iters;
            let used_batch = t <= self.cfg.warmup;
            let used_scale: Vec<f32> = if used_batch {
                batch_scale.clone()
            } else {
                st.running_phi.iter().map(|p| (p + eps).sqrt()).collect()
            };
            let (af, tf) = (self.cfg.alpha_fwd, t as f32);
            for (phi, &v) in st.running_phi.iter_mut().zip(&var) {
                if t < self.cfg.warmup {
                    *phi = *phi * (tf - 1.0) / tf + v / tf;
                }
                *phi = af * *phi + (1.0 - af) * v;
            }
            (used_batch, used_scale)
        };

        let z: Vec<f32> = xv
            .chunks_exact(c)
            .flat_map(|row| row.iter().zip(&used_scale).map(|(x, s)| x / s))
            .collect();
        let (x, mut tape) = x.split_tape();
        let out: Act<NoneTape> = x.device().tensor_from_vec(z.clone(), (n, c));
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        let (stats, mode, abkw, real) = (
            self.stats.clone(),
            self.backward,
            self.cfg.alpha_bkw,
            real.clone(),
        );
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&x_ghost)?;
            grads.try_alloc_for(&out_ghost)?;
            let g = grads.get(&out_ghost).as_vec();
            let gx = match mode {
                BackwardMode::Approximate => {
                    let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                    approximate_backward(&g, &z, &batch_scale, &mut st.ema_gz, abkw, &real)
                }
                BackwardMode::Exact if used_batch => exact_backward(&g, &z, &batch_scale, &real),
                BackwardMode::Exact => g
                    .chunks_exact(c)
                    .flat_map(|row| row.iter().zip(&used_scale).map(|(g, s)| g / s))
                    .collect(),
            };
            super::host::add_from_host(grads.get_or_alloc_mut(&x_ghost)?, &gx)
        });
        out.put_tape(tape)
    }
}

/// Step 5 of the module doc: the approximate backward, updating `ema_gz` in place.
/// Generic over the float type so the gradient checks can run it in f64.
pub fn approximate_backward<F: Float>(
    g: &[F],
    z: &[F],
    scale: &[F],
    ema_gz: &mut [F],
    alpha_bkw: F,
    real: &[bool],
) -> Vec<F> {
    let c = scale.len();
    let n_real = F::from(real.iter().filter(|&&r| r).count().max(1)).expect("count fits");
    let mut gt = vec![F::zero(); g.len()];
    let mut update = vec![F::zero(); c];
    for (i, ((gr, zr), out)) in g
        .chunks_exact(c)
        .zip(z.chunks_exact(c))
        .zip(gt.chunks_exact_mut(c))
        .enumerate()
    {
        for j in 0..c {
            out[j] = gr[j] - (F::one() - alpha_bkw) * ema_gz[j] * zr[j];
            if real[i] {
                update[j] = update[j] + out[j] * zr[j];
            }
        }
    }
    for (e, u) in ema_gz.iter_mut().zip(update) {
        *e = *e + u / n_real;
    }
    for row in gt.chunks_exact_mut(c) {
        for (v, &s) in row.iter_mut().zip(scale) {
            *v = *v / s;
        }
    }
    gt
}

/// The true gradient of `z = x / sqrt(ψ²(x) + ε)` with `ψ²` the mean of `x²` over real rows:
/// `∂L/∂x_i = (g_i − z_i · (1/n) Σ_k g_k z_k) / s` for real rows, `g_i / s` for padding (the
/// sum runs over all rows, since padding rows are scaled by the same statistic).
pub fn exact_backward<F: Float>(g: &[F], z: &[F], scale: &[F], real: &[bool]) -> Vec<F> {
    let c = scale.len();
    let n_real = F::from(real.iter().filter(|&&r| r).count().max(1)).expect("count fits");
    // Padding rows do not feed ψ², but their z depends on it: the sum covers every row.
    let mut mean_gz = vec![F::zero(); c];
    for (gr, zr) in g.chunks_exact(c).zip(z.chunks_exact(c)) {
        for j in 0..c {
            mean_gz[j] = mean_gz[j] + gr[j] * zr[j] / n_real;
        }
    }
    let mut out = vec![F::zero(); g.len()];
    for (i, ((gr, zr), o)) in g
        .chunks_exact(c)
        .zip(z.chunks_exact(c))
        .zip(out.chunks_exact_mut(c))
        .enumerate()
    {
        for j in 0..c {
            let corr = if real[i] {
                zr[j] * mean_gz[j]
            } else {
                F::zero()
            };
            o[j] = (gr[j] - corr) / scale[j];
        }
    }
    out
}

named_params!(PowerNorm { affine => "" } with running_state);

/// φ (the forward's running quadratic mean) and Γ (the backward's running mean of `g·z`),
/// checkpointed as `powernorm.<module>.running_phi` / `.ema_gz`; the counter is the number of
/// training forwards (warm-up ends by it).
impl RunningState for PowerNorm {
    fn kind(&self) -> &'static str {
        "powernorm"
    }
    fn vectors(&self) -> Vec<(&'static str, Vec<f32>)> {
        let s = self.stats();
        vec![("running_phi", s.running_phi), ("ema_gz", s.ema_gz)]
    }
    fn counter(&self) -> u64 {
        self.stats().iters
    }
    fn restore(&self, vectors: Vec<Vec<f32>>, counter: u64) {
        let [running_phi, ema_gz]: [Vec<f32>; 2] = vectors
            .try_into()
            .expect("PowerNorm's state is restored from the two vectors it lists");
        self.set_stats(Stats {
            running_phi,
            ema_gz,
            iters: counter,
        });
    }
}
