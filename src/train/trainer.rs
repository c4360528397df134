//! The one training loop, for every objective mix and every encoder variant.

use super::bundle::Bundle;
use super::checkpoint::{self, CheckpointError, TrainState};
pub(super) use super::error::io_err;
pub use super::error::TrainError;
use super::optimizer::{budget_learning_rate, learning_rate, AdamW};
use super::streams::Streams;
use crate::config::Experiment;
use crate::data::{DataError, Prepared, StreamSettings};
use crate::model::precision::{self, Precision};
use crate::model::TrainTape;
use crate::model::{Dev, InputError, Mode, Params};
use crate::objectives::{self, registry, Ctx, ObjectiveFor, Part};
use crate::rng::{stream, Rng};
use dfdx::prelude::*;
use std::cell::RefCell;
use std::path::Path;

/// Losses and accuracies of one batch (or the mean over several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// `(name, loss, correct, total)` per objective, in file order.
    pub per_objective: Vec<(String, f64, usize, usize)>,
    pub total_loss: f64,
}

impl Metrics {
    pub fn scalars(&self) -> Vec<(String, f64)> {
        let mut out = vec![("loss".to_string(), self.total_loss)];
        for (name, loss, c, t) in &self.per_objective {
            out.push((format!("{name}/loss"), *loss));
            if *t > 0 {
                out.push((format!("{name}/accuracy"), *c as f64 / *t as f64));
            }
        }
        out
    }
}

/// A micro-batch's loss with the tape that differentiates it.
pub(super) type TapedLoss = Tensor<Rank0, f32, Dev, TrainTape>;

pub struct Trainer<'a> {
    pub(super) cfg: &'a Experiment,
    config_text: String,
    pub(super) dev: Dev,
    pub bundle: Bundle,
    pub(super) optim: AdamW,
    /// The device step's copy of the AdamW moments (`device_step`); `None` until it first
    /// runs and after a checkpoint is loaded, when the host moments are current.
    pub(super) moments: Option<super::device_step::DeviceMoments>,
    streams: Streams,
    pub(super) prepared: &'a Prepared,
    dropout_rng: Rng,
    pub(super) needs: registry::Needs,
    /// The experiment's shared held-out batches (`None`: nothing held out).
    pub(super) eval_set: Option<super::evaluation::EvalSet>,
    pub step: u64,
    /// Learning-rate multiplier from divergence roll-backs, and how many there were.
    pub lr_scale: f64,
    pub rollbacks: u32,
    /// Seconds spent in `train_step` so far, across resumes: what `training.budget` counts.
    pub train_seconds: f64,
    /// The learning rate the last step used.
    pub last_lr: f64,
    /// The matrix products' precision as this CPU runs `training.precision`, and the line
    /// that says why when that is not what the config asks (`model::precision::resolve`).
    pub precision: Precision,
    pub precision_note: Option<String>,
}

impl<'a> Trainer<'a> {
    pub fn new(cfg: &'a Experiment, prepared: &'a Prepared) -> Result<Self, TrainError> {
        let dev = crate::model::device(cfg.training.seed)?;
        let bundle = Bundle::new(&dev, cfg, prepared.tokenizer.vocab_size());
        let needs = registry::combined_needs(cfg.objectives.iter().map(|o| o.name.as_str()));
        let masking =
            registry::masking(cfg.objectives.iter().map(|o| (o.name.as_str(), &o.options)));
        let settings = StreamSettings {
            seq_len: cfg.training.seq_len,
            short_seq_prob: cfg.training.short_seq_prob,
            mode: needs.pair.unwrap_or(crate::data::PairMode::Single),
            masking,
        };
        let streams =
            Streams::new(cfg, prepared, settings).map_err(crate::data::DataError::from)?;
        let eval_set = super::evaluation::EvalSet::build(
            prepared,
            cfg.training.seq_len,
            cfg.training.eval_batches,
        )?;
        let (precision, precision_note) = precision::resolve(cfg.training.precision);
        Ok(Self {
            precision,
            precision_note,
            config_text: super::settings::resolved_text(cfg),
            cfg,
            dev,
            optim: AdamW::for_params(&bundle),
            moments: None,
            bundle,
            streams,
            prepared,
            dropout_rng: stream_rng(cfg.training.seed),
            needs,
            eval_set,
            step: 0,
            lr_scale: 1.0,
            rollbacks: 0,
            train_seconds: 0.0,
            last_lr: 0.0,
        })
    }

    pub fn state(&self) -> TrainState {
        let (stream, short_stream) = self.streams.state();
        TrainState {
            step: self.step,
            stream,
            short_stream,
            dropout_rng: self.dropout_rng.clone(),
            optimizer_step: self.optim.step,
            powernorm_iters: self
                .bundle
                .running_states()
                .into_iter()
                .map(|(module, s)| (module, s.counter()))
                .collect(),
            config: self.config_text.clone(),
            lr_scale: self.lr_scale,
            rollbacks: self.rollbacks,
            train_seconds: self.train_seconds,
            precision: self.precision.name().into(),
        }
    }

    /// The learning rate of `step`, after roll-backs: by the step budget, or with a time
    /// budget by the fraction of it spent so far.
    pub fn learning_rate(&self, step: u64) -> f64 {
        let o = &self.cfg.optimizer;
        let lr = match &self.cfg.training.budget {
            None => learning_rate(o, step, self.cfg.training.steps),
            Some(_) => budget_learning_rate(o, step, self.progress()),
        };
        lr * self.lr_scale
    }

    /// The fraction of the run spent before the next step: of the time budget, or of the
    /// steps. What a budgeted run's learning rate, `batch_ramp` and `short_phase` follow.
    pub fn progress(&self) -> f64 {
        let t = &self.cfg.training;
        match &t.budget {
            Some(b) => b.fraction(self.train_seconds),
            None => (self.step as f64 / t.steps as f64).clamp(0.0, 1.0),
        }
    }

    /// Sequences per micro-batch at the next step: `training.batch_size`, or on its ramp.
    pub fn batch_size(&self) -> usize {
        let t = &self.cfg.training;
        t.batch_ramp
            .as_ref()
            .map_or(t.batch_size, |r| r.size_at(self.progress(), t.batch_size))
    }

    /// Whether the run is over: its step limit reached or its time budget spent.
    pub fn finished(&self) -> bool {
        let t = &self.cfg.training;
        self.step >= t.steps
            || t.budget
                .as_ref()
                .is_some_and(|b| self.train_seconds >= b.seconds)
    }

    /// After a divergence: back to the checkpoint at `path`, with the learning rate scaled by
    /// `training.rollback_lr_factor`. The data and dropout streams rewind with it, so the
    /// same batches are retried at the lower rate.
    pub fn roll_back(&mut self, path: &Path) -> Result<(), TrainError> {
        let (scale, count, spent) = (self.lr_scale, self.rollbacks, self.train_seconds);
        self.load_checkpoint(path)?;
        self.lr_scale = scale * self.cfg.training.rollback_lr_factor;
        self.rollbacks = count + 1;
        // The steps thrown away were paid for: a time budget keeps counting them.
        self.train_seconds = spent;
        Ok(())
    }

    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let mut on_device;
        let optim = match &self.moments {
            None => &self.optim,
            Some(moments) => {
                on_device = self.optim.clone();
                moments
                    .download(&mut on_device)
                    .map_err(super::device_step::dev_err(self.step))?;
                &on_device
            }
        };
        Ok(checkpoint::save(path, &self.bundle, optim, &self.state())?)
    }

    pub fn load_checkpoint(&mut self, path: &Path) -> Result<(), TrainError> {
        let state = checkpoint::load(path, &mut self.bundle, &mut self.optim, &self.config_text)?;
        self.moments = None;
        self.step = state.step;
        self.streams
            .restore(state.stream, state.short_stream)
            .map_err(|e| TrainError::Resume {
                path: path.into(),
                source: e.into(),
            })?;
        self.dropout_rng = state.dropout_rng;
        self.lr_scale = state.lr_scale;
        self.rollbacks = state.rollbacks;
        self.train_seconds = state.train_seconds;
        if state.precision != self.precision.name() {
            eprintln!(
                "{}: written with {} products, continued with {} ones (this CPU's): the run is not bit-identical to an uninterrupted one",
                path.display(),
                state.precision,
                self.precision.name()
            );
        }
        Ok(())
    }

    /// One micro-batch drawn from the training stream (the stream and the dropout stream
    /// advance): the objectives' weighted loss, scaled by `1/grad_accum`, with the tape that
    /// differentiates it, and its real-token count; its metrics are added to `metrics`.
    pub(super) fn micro_batch(
        &mut self,
        step: u64,
        metrics: &mut Metrics,
    ) -> Result<(TapedLoss, usize), TrainError> {
        let accum = self.cfg.training.grad_accum;
        let (size, progress) = (self.batch_size(), self.progress());
        let batch = self
            .streams
            .next_batch(size, progress)
            .map_err(DataError::from)?;
        let real = batch.real_tokens();
        let enc = &self.bundle.encoder;
        let inputs = inputs_of(enc, &batch)?;
        let readers = self.bundle.objectives.iter().map(|(_, o)| o.as_ref());
        let rows = self.rows_read(readers, &batch, &inputs);
        let hidden = enc.forward_rows(
            &self.dev,
            &inputs,
            TrainTape::default(),
            Mode::Train(&mut self.dropout_rng),
            rows.as_deref(),
        );
        let mut view2 = self.needs.two_views.then(|| {
            enc.forward_rows(
                &self.dev,
                &inputs,
                TrainTape::default(),
                Mode::Train(&mut self.dropout_rng),
                rows.as_deref(),
            )
        });
        let rng = RefCell::new(&mut self.dropout_rng);
        let ctx = Ctx {
            dev: &self.dev,
            encoder: enc,
            batch: &batch,
            inputs: &inputs,
            rng: Some(&rng),
        };
        let (h, tape) = hidden.split_tape();
        let mut tape = Some(tape);
        let mut total: Option<TapedLoss> = None;
        for (weight, obj) in &self.bundle.objectives {
            let hid = match tape.take() {
                Some(tape) => h.clone().put_tape(tape),
                None => h.retaped(),
            };
            let v2 = if registry::find(obj.name()).is_some_and(|e| e.needs.two_views) {
                view2.take()
            } else {
                None
            };
            let loss = ObjectiveFor::<TrainTape>::loss(obj.as_ref(), hid, v2, &ctx);
            let value = loss.value.array();
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step,
                    objective: obj.name().into(),
                    value,
                });
            }
            accumulate(
                metrics,
                obj.name(),
                value as f64 / accum as f64,
                loss.correct,
                loss.total,
                *weight,
            );
            accumulate_parts(metrics, obj.name(), &loss.parts, 1.0 / accum as f64);
            let scaled = loss.value * (*weight as f32 / accum as f32);
            total = Some(match total {
                None => scaled,
                Some(acc) => acc + scaled,
            });
        }
        Ok((total.expect("at least one objective"), real))
    }

    /// One optimiser step over `grad_accum` micro-batches. Returns the step's metrics, the
    /// gradient norm before clipping and the real tokens. A CUDA build steps on the device
    /// (`device_step`), the CPU with the host AdamW.
    pub fn train_step(&mut self) -> Result<(Metrics, f64, usize), TrainError> {
        let _products = precision::autocast(self.precision);
        let _awake = super::awake::Awake::start();
        if cfg!(feature = "cuda") {
            self.train_step_on_device()
        } else {
            self.train_step_on_host()
        }
    }

    /// `train_step` with the host AdamW: every parameter and gradient copied to host vectors.
    /// Replaces the freshly initialised encoder with the one saved in the pretraining
    /// checkpoint `path` (`model.init`), PowerNorm statistics included, and each objective's
    /// head that the checkpoint also holds (an MLM continued from an MLM run keeps its head,
    /// as HF's `from_pretrained` loads every weight whose name matches); the other heads and
    /// the optimiser start fresh. Returns the heads loaded. A checkpoint of another shape or
    /// vocabulary is refused, naming the tensor.
    pub fn init_from(&mut self, path: &Path) -> Result<Vec<String>, TrainError> {
        let source = checkpoint::open(path)?;
        source.load_encoder(&mut self.bundle.encoder)?;
        let mut loaded = Vec::new();
        for (_, o) in &mut self.bundle.objectives {
            let prefix = format!("heads.{}", o.name());
            if source.has(&prefix)? {
                source.load_head(&prefix, o.as_mut())?;
                loaded.push(o.name().to_string());
            }
        }
        Ok(loaded)
    }

    /// Starts from an HF BERT directory instead (`model.init = "hf:DIR"`): its encoder, and
    /// the heads of this run's objectives that its file holds. Returns those objectives.
    pub fn init_from_hf(
        &mut self,
        hf: &crate::hf::import::HfBert,
    ) -> Result<Vec<String>, TrainError> {
        let b = &mut self.bundle;
        Ok(
            crate::hf::import::load(hf, &mut b.encoder, &mut b.objectives)
                .map_err(CheckpointError::from)?,
        )
    }

    /// The resolved settings as TOML, as checkpoints and `config.resolved.toml` hold them.
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// The fingerprint of the shared held-out set (`None` when nothing is held out).
    pub fn eval_fingerprint(&self) -> Option<&str> {
        self.eval_set.as_ref().map(|e| e.fingerprint.as_str())
    }

    /// The rows the encoder computes in its last block for `readers` on this batch
    /// (`objectives::rows_read`); `None`, every row, with `training.dense_last_layer`.
    pub(super) fn rows_read<'o>(
        &self,
        readers: impl IntoIterator<Item = &'o dyn crate::objectives::Objective>,
        batch: &crate::data::Batch,
        inputs: &crate::model::Inputs,
    ) -> Option<Vec<usize>> {
        if self.cfg.training.dense_last_layer {
            return None;
        }
        objectives::rows_read(readers, batch, inputs)
    }
}

/// The encoder's view of a batch, checked against the model's sizes.
pub(super) fn inputs_of(
    enc: &crate::model::Encoder,
    b: &crate::data::Batch,
) -> Result<crate::model::Inputs, InputError> {
    enc.inputs(
        b.size,
        b.seq_len,
        &b.input_ids,
        &b.token_type_ids,
        &b.attention_mask,
    )
}

fn stream_rng(seed: u64) -> Rng {
    stream(seed, "model.dropout")
}

pub(super) fn accumulate(
    m: &mut Metrics,
    name: &str,
    loss: f64,
    correct: usize,
    total: usize,
    weight: f64,
) {
    m.total_loss += weight * loss;
    tally(m, name, loss, correct, total);
}

/// The components of an objective's loss (`Loss::parts`), each `scale`d as its objective's
/// loss is, logged as `<objective>/<part>` and kept out of the total.
pub(super) fn accumulate_parts(m: &mut Metrics, objective: &str, parts: &[Part], scale: f64) {
    for p in parts {
        let name = format!("{objective}/{}", p.name);
        tally(m, &name, p.loss * scale, p.correct, p.total);
    }
}

fn tally(m: &mut Metrics, name: &str, loss: f64, correct: usize, total: usize) {
    match m.per_objective.iter_mut().find(|(n, ..)| n == name) {
        Some(e) => {
            e.1 += loss;
            e.2 += correct;
            e.3 += total;
        }
        None => m
            .per_objective
            .push((name.to_string(), loss, correct, total)),
    }
}
