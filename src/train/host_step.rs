//! The optimiser step on the host, as the CPU trains: every gradient summed into host
//! vectors (on the CPU the first micro-batch's gradient buffers are moved, not copied), their
//! global norm taken, and `optimizer::AdamW` run one parameter at a time with the clipping's
//! factor, reading the old values in place and writing the new ones once. Before, a step
//! zero-filled, copied, checked and added every gradient and copied every parameter out and
//! back on one thread: 6 % of a large-shape step. Exact resume and the stored benchmark trace
//! are pinned to this path; `device_step` is the CUDA one.

use super::optimizer::{clip_scale, global_norm, AdamW};
use super::trainer::{Metrics, TrainError, Trainer};
use crate::config::OptimizerConfig;
use crate::model::Params;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Steps the host AdamW on `grads` (host vectors, one per parameter of `params` in visiting
/// order) clipped to `cfg.clip` and makes the new values the parameters': the CPU step that
/// pretraining and fine-tuning share. Returns the gradient norm before clipping, or, where a
/// gradient is not finite, the index of the first such parameter, nothing having changed.
/// The norm is that check: a NaN or an infinity anywhere makes it so, and only then are the
/// gradients searched (a pass over every gradient of each micro-batch before, 0.5 % of a large
/// step).
pub fn update(
    params: &mut dyn Params,
    grads: &[Vec<f32>],
    optim: &mut AdamW,
    cfg: &OptimizerConfig,
    lr: f64,
) -> Result<f64, usize> {
    let norm = global_norm(grads);
    if !norm.is_finite() {
        return Err(grads
            .iter()
            .position(|g| !all_finite(g))
            .unwrap_or_default());
    }
    let scale = clip_scale(norm, cfg.clip);
    let c = optim.coefficients(cfg, lr);
    let mut i = 0;
    // One parameter at a time: its values read where the tensor holds them, the new ones
    // written into a buffer that becomes the tensor's (dfdx lends no mutable view of a
    // tensor's values).
    params.visit_mut("", &mut |_, mut p| {
        let values = optim.apply(&c, i, &p.values(), &grads[i], scale);
        p.replace(values);
        i += 1;
    });
    Ok(norm)
}

/// Whether every value is finite, checked over rayon's threads without stopping early (so
/// that the check vectorises).
fn all_finite(x: &[f32]) -> bool {
    x.par_chunks(1 << 16)
        .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()))
}

impl Trainer<'_> {
    pub fn train_step_on_host(&mut self) -> Result<(Metrics, f64, usize), TrainError> {
        let started = std::time::Instant::now();
        let step = self.step + 1;
        if let Some(moments) = self.moments.take() {
            moments
                .download(&mut self.optim)
                .map_err(super::device_step::dev_err(step))?;
        }
        let lr = self.learning_rate(step);
        let (grads, metrics, tokens) = self.gradients(step)?;
        let norm = update(
            &mut self.bundle,
            &grads,
            &mut self.optim,
            &self.cfg.optimizer,
            lr,
        )
        .map_err(|i| TrainError::NonFiniteGrad {
            step,
            param: self.bundle.named_params().swap_remove(i).0,
        })?;
        self.step = step;
        self.last_lr = lr;
        self.train_seconds += started.elapsed().as_secs_f64();
        Ok((metrics, norm, tokens))
    }

    /// The summed gradients of `grad_accum` micro-batches drawn from the training stream (the
    /// stream and the dropout stream advance), with their metrics and real-token count;
    /// `step` names the step in errors. No parameter changes.
    fn gradients(&mut self, step: u64) -> Result<(Vec<Vec<f32>>, Metrics, usize), TrainError> {
        let accum = self.cfg.training.grad_accum;
        let mut grads: Vec<Vec<f32>> = Vec::new();
        let mut metrics = Metrics::default();
        let mut tokens = 0;
        for _ in 0..accum {
            let (total, real) = self.micro_batch(step, &mut metrics)?;
            tokens += real;
            let mut g = total.backward();
            for (i, (_, p)) in self.bundle.named_params().into_iter().enumerate() {
                // The first micro-batch's gradients become the sums; later ones add to them.
                let pg = p.take_grad(&mut g);
                match grads.get_mut(i) {
                    Some(acc) => acc
                        .par_iter_mut()
                        .zip(pg.par_iter())
                        .with_min_len(1 << 14)
                        .for_each(|(a, b)| *a += b),
                    None => grads.push(pg),
                }
            }
        }
        Ok((grads, metrics, tokens))
    }

    /// The gradient norm of each encoder layer (all its parameters together), plus the
    /// embeddings and heads, averaged over `batches` training batches at the current weights,
    /// without updating them — Xiong et al.'s Figure 3 is this at initialisation.
    pub fn layer_gradient_norms(
        &mut self,
        batches: usize,
    ) -> Result<Vec<(String, f64)>, TrainError> {
        let names: Vec<String> = self
            .bundle
            .named_params()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut out: Vec<(String, f64)> = Vec::new();
        for _ in 0..batches.max(1) {
            let (grads, ..) = self.gradients(self.step + 1)?;
            let mut sums: Vec<(String, f64)> = Vec::new();
            for (name, g) in names.iter().zip(&grads) {
                let group = layer_of(name);
                let sq: f64 = g.iter().map(|x| (*x as f64).powi(2)).sum();
                match sums.iter_mut().find(|(n, _)| *n == group) {
                    Some(e) => e.1 += sq,
                    None => sums.push((group, sq)),
                }
            }
            for (group, sq) in sums {
                let v = sq.sqrt() / batches.max(1) as f64;
                match out.iter_mut().find(|(n, _)| *n == group) {
                    Some(e) => e.1 += v,
                    None => out.push((group, v)),
                }
            }
        }
        Ok(out)
    }
}

/// `encoder.layers.3` for a parameter of layer 3; `embeddings` or `heads` for the others.
fn layer_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["encoder", "layers", i, ..] => format!("encoder.layers.{i}"),
        ["encoder", "embeddings", ..] | ["embeddings", ..] => "embeddings".into(),
        ["encoder", ..] => "encoder.other".into(),
        _ => "heads".into(),
    }
}
