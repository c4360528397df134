//! The optimiser step on the host, as the CPU trains: every gradient summed into host
//! vectors, clipped and fed to `optimizer::AdamW`, the parameters copied back. Exact resume
//! and the stored benchmark trace are pinned to this path; `device_step` is the CUDA one.

use super::optimizer::{clip_global_norm, AdamW};
use super::trainer::{Metrics, TrainError, Trainer};
use crate::config::OptimizerConfig;
use crate::model::Params;
use dfdx::prelude::*;

/// Clips `grads` (host vectors, one per parameter of `params` in visiting order), steps the
/// host AdamW and writes the new values back: the CPU step that pretraining and fine-tuning
/// share. Returns the gradient norm before clipping.
pub fn update(
    params: &mut dyn Params,
    grads: &mut [Vec<f32>],
    optim: &mut AdamW,
    cfg: &OptimizerConfig,
    lr: f64,
) -> f64 {
    let norm = clip_global_norm(grads, cfg.clip);
    let mut values: Vec<Vec<f32>> = params
        .named_params()
        .into_iter()
        .map(|(_, p)| p.to_vec())
        .collect();
    optim.update(cfg, lr, &mut values, grads);
    let mut it = values.into_iter();
    params.visit_mut("", &mut |_, mut p| {
        p.copy_from(&it.next().expect("one value per parameter"))
    });
    norm
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
        let (mut grads, metrics, tokens) = self.gradients(step)?;
        let norm = update(
            &mut self.bundle,
            &mut grads,
            &mut self.optim,
            &self.cfg.optimizer,
            lr,
        );
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
        let mut grads: Vec<Vec<f32>> = self
            .bundle
            .named_params()
            .iter()
            .map(|(_, p)| vec![0.0; p.shape().iter().product()])
            .collect();
        let mut metrics = Metrics::default();
        let mut tokens = 0;
        for _ in 0..accum {
            let (total, real) = self.micro_batch(step, &mut metrics)?;
            tokens += real;
            let mut g = total.backward();
            for ((name, p), acc) in self.bundle.named_params().into_iter().zip(grads.iter_mut()) {
                let pg = p.grad(&mut g);
                if pg.iter().any(|x| !x.is_finite()) {
                    return Err(TrainError::NonFiniteGrad { step, param: name });
                }
                acc.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
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
