//! A fine-tuning run's optimiser: its settings, resolved from the `[[finetune]]` entry and the
//! mode, and its step — the one pretraining takes (`train::host_step` on the CPU,
//! `train::device_step` on CUDA).

use super::error::FinetuneError;
use super::job::Job;
use super::task::Kind;
use crate::config::{Mode, OptimizerConfig, Pooling, Schedule};
use crate::model::Grads;
use crate::model::{Dev, Params};
use crate::train::device_step::{self, DeviceMoments, StepError};
use crate::train::host_step;
use crate::train::optimizer::AdamW;

/// Settings resolved from the entry and its mode.
pub(super) struct Resolved {
    pub(super) mean_pool: bool,
    pub(super) optim: OptimizerConfig,
}

pub(super) fn resolve(job: &Job, steps: u64) -> Resolved {
    let s = &job.spec;
    let mean_pool = match s.pooling {
        Pooling::Cls => false,
        Pooling::Mean => true,
        Pooling::Auto => job.mode == Mode::Probe || job.task.kind == Kind::Embed,
    };
    Resolved {
        mean_pool,
        optim: OptimizerConfig {
            lr: job.lr,
            betas: [0.9, 0.999],
            eps: 1e-6,
            eps_placement: Default::default(),
            weight_decay: s.weight_decay,
            warmup_steps: (s.warmup_fraction * steps as f64).round() as u64,
            schedule: Schedule::Linear,
            clip: s.clip,
        },
    }
}

/// The optimiser's state over a fine-tuning run: AdamW, and on CUDA its moments on the device.
pub(super) struct Optimiser {
    pub(super) adamw: AdamW,
    pub(super) moments: Option<DeviceMoments>,
}

/// Clips, steps AdamW and writes the new values back; returns the gradient norm. The step
/// pretraining takes: the host one on the CPU, the device one on CUDA.
pub(super) fn update(
    params: &mut dyn Params,
    grads: &mut Grads,
    optim: &mut Optimiser,
    dev: &Dev,
    cfg: &OptimizerConfig,
    (lr, step, job): (f64, u64, &Job),
) -> Result<f64, FinetuneError> {
    if cfg!(feature = "cuda") {
        let (adamw, moments) = (&mut optim.adamw, &mut optim.moments);
        return device_step::update(params, grads, adamw, moments, dev, cfg, lr).map_err(|e| {
            FinetuneError::Step {
                task: job.task.name.into(),
                step,
                what: match e {
                    StepError::NonFinite(p) => format!("the gradient of `{p}` is not finite"),
                    StepError::Device(e) => format!("the device failed: {e:?}"),
                },
            }
        });
    }
    let g: Vec<Vec<f32>> = params
        .named_params()
        .iter()
        .map(|(_, p)| {
            let v = p.grad(grads);
            if v.is_empty() {
                vec![0.0; p.shape().iter().product()]
            } else {
                v
            }
        })
        .collect();
    host_step::update(params, &g, &mut optim.adamw, cfg, lr).map_err(|i| FinetuneError::Step {
        task: job.task.name.into(),
        step,
        what: format!(
            "the gradient of `{}` is not finite",
            params.named_params().swap_remove(i).0
        ),
    })
}
