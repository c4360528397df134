//! AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected as in HF's AdamW
//! (ε before the correction by default, torch's placement by `optimizer.eps_placement`), and
//! the learning-rate schedule.
//!
//! Why not dfdx's `Adam`: it applies one weight-decay setting to every tensor (BERT exempts
//! biases and norm weights) and keeps its moments private, so a checkpoint could not save
//! them and resume would not be exact. This one keeps its state in plain vectors.

use crate::config::{EpsPlacement, OptimizerConfig, Schedule};
use crate::model::Params;
use multiversion::multiversion;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::mem::MaybeUninit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Whether each parameter gets weight decay.
    pub decay: Vec<bool>,
}

/// One step's constants: `p ← p − decay·p − step_size · m / (√v + eps)`, with `c2 = 1 − β₂ᵗ`.
#[derive(Debug, Clone, Copy)]
pub struct Coefficients {
    pub b1: f64,
    pub b2: f64,
    pub c2: f64,
    /// ε as added to `√v` (HF's legacy placement; torch's is converted).
    pub eps: f64,
    pub step_size: f64,
    pub decay: f64,
}

/// BERT's rule, decided by a parameter's kind rather than its name: matrices (projections,
/// embeddings) decay, vectors (biases, normalisation gains and shifts) do not. For every
/// parameter pretext builds this is the set the name rule (`.bias`, `norm.`) picked
/// (`tests/optimizer.rs` checks it over every objective and norm), and a new module gets it
/// right without naming its tensors to suit the optimiser.
pub fn decays(shape: &[usize]) -> bool {
    shape.len() > 1
}

impl AdamW {
    /// Zero moments for parameters of these shapes, in visiting order.
    pub fn new(shapes: &[Vec<usize>]) -> Self {
        let zeros = || -> Vec<Vec<f32>> {
            shapes
                .iter()
                .map(|s| vec![0.0; s.iter().product()])
                .collect()
        };
        Self {
            step: 0,
            m: zeros(),
            v: zeros(),
            decay: shapes.iter().map(|s| decays(s)).collect(),
        }
    }

    /// `new` for every parameter of `module`.
    pub fn for_params(module: &(impl Params + ?Sized)) -> Self {
        let shapes: Vec<Vec<usize>> = module
            .named_params()
            .iter()
            .map(|(_, p)| p.shape())
            .collect();
        Self::new(&shapes)
    }

    /// Advances the step count and returns this step's constants.
    pub fn coefficients(&mut self, cfg: &OptimizerConfig, lr: f64) -> Coefficients {
        self.step += 1;
        let [b1, b2] = cfg.betas;
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        // torch's m̂/(√v̂ + ε) is the legacy update with ε·√(1 − β₂ᵗ) in place of ε.
        let eps = match cfg.eps_placement {
            EpsPlacement::HfLegacy => cfg.eps,
            EpsPlacement::Torch => cfg.eps * c2.sqrt(),
        };
        Coefficients {
            b1,
            b2,
            c2,
            eps,
            step_size: lr * c2.sqrt() / c1,
            decay: lr * cfg.weight_decay,
        }
    }

    /// One update of every parameter `params[i]` with gradient `grads[i]` at learning rate `lr`.
    pub fn update(
        &mut self,
        cfg: &OptimizerConfig,
        lr: f64,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
    ) {
        let c = self.coefficients(cfg, lr);
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            *p = self.apply(&c, i, p, g, 1.0);
        }
    }

    /// Parameter `i`'s new values from its values `p` and gradient `g · scale` (`scale` being
    /// the clipping's factor, `clip_scale`), with this step's constants `c`. The training loop
    /// runs it one parameter at a time, reading the old values where the tensor holds them and
    /// writing the new ones into the buffer the tensor is given next: one pass over the
    /// parameter, its gradient and its moments. The copy out of the tensor and the clipping's
    /// own pass over every gradient were two more (3–4 % of a large fp32 step with the norm).
    pub fn apply(
        &mut self,
        c: &Coefficients,
        i: usize,
        p: &[f32],
        g: &[f32],
        scale: f32,
    ) -> Vec<f32> {
        let k = Kernel {
            b1: c.b1 as f32,
            b2: c.b2 as f32,
            eps: c.eps as f32,
            step_size: c.step_size as f32,
            decay: if self.decay[i] {
                Some(c.decay as f32)
            } else {
                None
            },
            scale,
        };
        let (m, v) = (&mut self.m[i], &mut self.v[i]);
        // Every chunk of `new` must meet one of each of the others for `set_len` below.
        assert!(
            p.len() == g.len() && p.len() == m.len() && p.len() == v.len(),
            "parameter {i}: values, gradient and moments differ in length"
        );
        let mut new = Vec::with_capacity(p.len());
        // Elementwise, so splitting over threads changes no result.
        new.spare_capacity_mut()[..p.len()]
            .par_chunks_mut(CHUNK)
            .zip(p.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((new, (p, g)), (m, v))| adamw(&k, p, g, m, v, new));
        // SAFETY: `adamw` wrote every element of every chunk.
        unsafe { new.set_len(p.len()) };
        new
    }
}

/// Elements an optimiser task updates.
const CHUNK: usize = 1 << 14;

/// One step's constants as one parameter's update reads them.
struct Kernel {
    b1: f32,
    b2: f32,
    eps: f32,
    step_size: f32,
    /// `lr · weight_decay` where the parameter decays.
    decay: Option<f32>,
    /// The gradient's factor: the clipping's, or 1.
    scale: f32,
}

/// AdamW on a chunk, compiled for each instruction set (`multiversion`): on one SSE2 lane of
/// four the square root and the division kept each chunk's memory waiting. The arithmetic is
/// IEEE's, the same floats at any width.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn adamw(
    k: &Kernel,
    p: &[f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    new: &mut [MaybeUninit<f32>],
) {
    let (b1, b2, eps, step_size, scale) = (k.b1, k.b2, k.eps, k.step_size, k.scale);
    let update = |p: f32, g: f32, m: &mut f32, v: &mut f32| {
        let g = g * scale;
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        p - step_size * *m / (v.sqrt() + eps)
    };
    let rows = p.iter().zip(g).zip(m.iter_mut().zip(v.iter_mut())).zip(new);
    match k.decay {
        Some(wd) => rows.for_each(|(((&p, &g), (m, v)), o)| {
            o.write(update(p - wd * p, g, m, v));
        }),
        None => rows.for_each(|(((&p, &g), (m, v)), o)| {
            o.write(update(p, g, m, v));
        }),
    }
}

/// Learning rate at `step` (1-based): linear warm-up, then constant, linear or cosine decay
/// to zero at `total`.
pub fn learning_rate(cfg: &OptimizerConfig, step: u64, total: u64) -> f64 {
    let w = cfg.warmup_steps;
    let progress = if total > w {
        step.saturating_sub(w) as f64 / (total - w) as f64
    } else {
        1.0
    };
    scheduled(cfg, step, progress)
}

/// Learning rate at `step` of a run with a time budget (`training.budget`) of which
/// `fraction` is spent: the same linear warm-up over the first `warmup_steps` steps, then the
/// decay over the fraction of the budget — the schedule a step budget would give if the
/// steps to come were known. (After warm-up the decay starts from the fraction spent in
/// warm-up, a step down of that fraction of the peak for a linear decay.)
pub fn budget_learning_rate(cfg: &OptimizerConfig, step: u64, fraction: f64) -> f64 {
    scheduled(cfg, step, fraction)
}

fn scheduled(cfg: &OptimizerConfig, step: u64, progress: f64) -> f64 {
    let w = cfg.warmup_steps;
    if w > 0 && step <= w {
        return cfg.lr * step as f64 / w as f64;
    }
    let progress = progress.clamp(0.0, 1.0);
    cfg.lr
        * match cfg.schedule {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - progress,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
}

/// The gradients' global L2 norm: every parameter's `Σ g²` summed in fixed chunks over
/// rayon's threads, so the same sum whatever the thread count.
pub fn global_norm(grads: &[Vec<f32>]) -> f64 {
    const CHUNK: usize = 1 << 16;
    grads
        .iter()
        .flat_map(|g| {
            g.par_chunks(CHUNK)
                .map(sum_of_squares)
                .collect::<Vec<f64>>()
        })
        .sum::<f64>()
        .sqrt()
}

/// The factor global clipping multiplies every gradient by: `max_norm / (norm + 1e-6)` where
/// the norm exceeds `max_norm`, else 1 (and `max_norm` 0 disables clipping). `AdamW::apply`
/// takes it, so the gradients are not written over first.
pub fn clip_scale(norm: f64, max_norm: f64) -> f32 {
    if max_norm > 0.0 && norm > max_norm {
        (max_norm / (norm + 1e-6)) as f32
    } else {
        1.0
    }
}

/// `Σ x²` in f64, element `i` summed into lane `i mod 16` and the lanes summed in order: the
/// same sum at any vector width. Compiled per instruction set: in SSE2 it ran at a quarter
/// of the memory's speed (1.5 % of a large fp32 step).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn sum_of_squares(x: &[f32]) -> f64 {
    const LANES: usize = 16;
    let mut lanes = [0.0f64; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64 * v as f64;
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += v as f64 * v as f64;
    }
    lanes.iter().sum()
}
