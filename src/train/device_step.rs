//! The optimiser step where the parameters live: gradients summed, clipped and fed to dfdx's
//! fused AdamW kernel on the device, one kernel per parameter. CUDA builds train with it, so
//! no parameter, gradient or moment crosses the bus in a step — one number per parameter
//! comes back (its squared gradient norm, for clipping and the finite check). The first GPU
//! run (reports/gpu) spent most of a step copying every parameter out and back for the host
//! AdamW.
//!
//! The CPU trains with the host AdamW (`host_step`), to which exact resume and the stored
//! benchmark trace are pinned; this one is the same update (`AdamW::coefficients`, with ε
//! moved where dfdx's kernel adds it) in another summation order, and `tests/device_step.rs`
//! runs both on the CPU and compares them. Fine-tuning calls `update` too.

use super::optimizer::{AdamW, Coefficients};
use super::trainer::{Metrics, TrainError, Trainer};
use crate::config::OptimizerConfig;
use crate::model::host::{self, DevError, GradBuf};
use crate::model::Grads;
use crate::model::{Dev, Params};
use dfdx::prelude::*;

/// AdamW's moments on the device, in the order of `named_params`.
pub struct DeviceMoments {
    m: Vec<GradBuf>,
    v: Vec<GradBuf>,
}

impl DeviceMoments {
    /// The host optimiser's moments, copied to `dev`.
    pub fn upload(dev: &Dev, optim: &AdamW) -> Result<Self, DevError> {
        let copy = |host: &Vec<Vec<f32>>| -> Result<Vec<GradBuf>, DevError> {
            host.iter().map(|x| host::from_host(dev, x)).collect()
        };
        Ok(Self {
            m: copy(&optim.m)?,
            v: copy(&optim.v)?,
        })
    }

    /// Writes the moments back into the host optimiser (for a checkpoint).
    pub fn download(&self, optim: &mut AdamW) -> Result<(), DevError> {
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            optim.m[i] = host::to_host(m)?;
            optim.v[i] = host::to_host(v)?;
        }
        Ok(())
    }
}

/// A device failure at `step`, as the training loop reports it.
pub(super) fn dev_err(step: u64) -> impl Fn(DevError) -> TrainError {
    move |e| TrainError::DeviceStep {
        step,
        message: format!("{e:?}"),
    }
}

impl Trainer<'_> {
    /// One optimiser step over `grad_accum` micro-batches with the update on the device.
    /// Returns what `train_step` returns.
    pub fn train_step_on_device(&mut self) -> Result<(Metrics, f64, usize), TrainError> {
        let started = std::time::Instant::now();
        let step = self.step + 1;
        let lr = self.learning_rate(step);
        let err = dev_err(step);
        let (mut grads, metrics, tokens) = self.device_gradients(step)?;
        let norm = update(
            &mut self.bundle,
            &mut grads,
            &mut self.optim,
            &mut self.moments,
            &self.dev,
            &self.cfg.optimizer,
            lr,
        )
        .map_err(|e| match e {
            StepError::NonFinite(param) => TrainError::NonFiniteGrad { step, param },
            StepError::Device(e) => err(e),
        })?;
        self.step = step;
        self.last_lr = lr;
        self.train_seconds += started.elapsed().as_secs_f64();
        Ok((metrics, norm, tokens))
    }

    /// The gradients of `grad_accum` micro-batches, summed where they are.
    fn device_gradients(&mut self, step: u64) -> Result<(Grads, Metrics, usize), TrainError> {
        let err = dev_err(step);
        let mut metrics = Metrics::default();
        let mut tokens = 0;
        let mut sum: Option<Grads> = None;
        for _ in 0..self.cfg.training.grad_accum {
            let (total, real) = self.micro_batch(step, &mut metrics)?;
            tokens += real;
            let mut g = total.backward();
            match sum.as_mut() {
                None => sum = Some(g),
                Some(acc) => {
                    for (_, p) in self.bundle.named_params() {
                        let src: &GradBuf = p.grad_buf(&mut g).map_err(&err)?;
                        host::add_into(p.grad_buf(acc).map_err(&err)?, src).map_err(&err)?;
                    }
                }
            }
        }
        Ok((sum.expect("grad_accum ≥ 1"), metrics, tokens))
    }
}

/// Why a device step stopped.
#[derive(Debug)]
pub enum StepError {
    /// The gradient of this parameter holds a non-finite value.
    NonFinite(String),
    Device(DevError),
}

/// Clips the gradients `grads` holds for `params` and steps AdamW where the parameters live:
/// the CUDA step that pretraining and fine-tuning share. `moments` is uploaded from `optim`
/// on first use; `optim` keeps the step count. Returns the gradient norm before clipping.
pub fn update(
    params: &mut dyn Params,
    grads: &mut Grads,
    optim: &mut AdamW,
    moments: &mut Option<DeviceMoments>,
    dev: &Dev,
    cfg: &OptimizerConfig,
    lr: f64,
) -> Result<f64, StepError> {
    // Squared norms per parameter: the finite check names the parameter, as the host path's
    // does, and their sum is the global norm for clipping.
    let mut squares = Vec::new();
    for (name, p) in params.named_params() {
        let sq = p.grad_sum_squares(grads).map_err(StepError::Device)?;
        if !sq.is_finite() {
            return Err(StepError::NonFinite(name));
        }
        squares.push(sq);
    }
    let norm = squares.iter().sum::<f64>().sqrt();
    let scale = (cfg.clip > 0.0 && norm > cfg.clip).then(|| (cfg.clip / (norm + 1e-6)) as f32);
    if moments.is_none() {
        *moments = Some(DeviceMoments::upload(dev, optim).map_err(StepError::Device)?);
    }
    let c = optim.coefficients(cfg, lr);
    let adam = adam_config(&c, lr, cfg.weight_decay);
    let t = optim.step as i32;
    let (decay, moments) = (&optim.decay, moments.as_mut().expect("uploaded"));
    let mut i = 0;
    let mut result = Ok(());
    params.visit_mut("", &mut |_, mut p| {
        if result.is_err() {
            return;
        }
        result = (|| {
            let g = p.grad_buf(grads)?;
            if let Some(s) = scale {
                host::scale(g, s)?;
            }
            let cfg = AdamConfig {
                weight_decay: if decay[i] { adam.weight_decay } else { None },
                ..adam
            };
            p.adam(&cfg, t, &mut moments.m[i], &mut moments.v[i], g)
        })();
        i += 1;
    });
    result.map_err(StepError::Device)?;
    Ok(norm)
}

/// dfdx's Adam adds ε to `√v̂` (torch's placement); `Coefficients::eps` is added to `√v`, so it
/// is divided by `√(1 − β₂ᵗ)`. Its decoupled decay multiplies by the learning rate itself.
fn adam_config(c: &Coefficients, lr: f64, weight_decay: f64) -> AdamConfig {
    AdamConfig {
        lr,
        betas: [c.b1, c.b2],
        eps: c.eps / c.c2.sqrt(),
        weight_decay: (weight_decay > 0.0).then_some(WeightDecay::Decoupled(weight_decay)),
    }
}
