//! One pretraining run from start (or its checkpoint) to finish: the step loop with logging,
//! held-out evaluation, probes at the last step, checkpoints, the divergence guard and
//! roll-backs. The arithmetic of a step lives in `trainer`.

use super::log::RunLog;
use super::trainer::{io_err, Metrics, TrainError, Trainer};
use crate::config::Experiment;
use crate::data::Prepared;
use crate::init_source::Init;
use crate::model::Params;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub resume: bool,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Stop after this step (with a checkpoint), leaving the run to be continued later, as a
    /// job that must end before a cluster's time limit would.
    pub stop_at: Option<u64>,
    /// `model.init` resolved against the experiment file and checked
    /// (`init_source::init_checkpoint`): what a fresh (not resumed) run starts from.
    pub init: Option<crate::init_source::Init>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub steps: u64,
    pub first: Metrics,
    pub last_train: Metrics,
    pub last_eval: Option<Metrics>,
    pub tokens_per_second: f64,
    pub resumed_from: Option<u64>,
    /// Whether the run reached its end (step limit or time budget), not only `--stop-at`.
    pub finished: bool,
    /// Seconds spent in training steps, across resumes (what `training.budget` counts).
    pub train_seconds: f64,
    /// The fingerprint of the held-out set `last_eval` was scored on (`evaluation`).
    pub eval_fingerprint: Option<String>,
    /// Probe accuracies for the pair tasks the run did not train (`probe`), at the last step.
    pub probes: Vec<(String, f64)>,
}

/// The step and the culprit of a non-finite loss or gradient.
fn divergence(e: &TrainError) -> Option<(u64, String)> {
    match e {
        TrainError::NonFiniteLoss {
            step,
            objective,
            value,
        } => Some((
            *step,
            format!("the loss of objective `{objective}` is {value}"),
        )),
        TrainError::NonFiniteGrad { step, param } => Some((
            *step,
            format!("the gradient of `{param}` holds a non-finite value"),
        )),
        _ => None,
    }
}

/// Trains one run in `dir` (TensorBoard events, metrics.jsonl, checkpoints/latest.safetensors).
pub fn run(
    cfg: &Experiment,
    prepared: &Prepared,
    dir: &Path,
    opts: &Options,
) -> Result<Summary, TrainError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _lock = crate::rundir::claim(dir, crate::rundir::RunKind::Pretraining)?;
    let ckpt = crate::rundir::checkpoint_path(dir);
    let mut trainer = Trainer::new(cfg, prepared)?;
    if let Some(note) = &trainer.precision_note {
        eprintln!("{}: {note}", dir.display());
    }
    let resumed_from = if opts.resume && ckpt.exists() {
        trainer.load_checkpoint(&ckpt)?;
        Some(trainer.step)
    } else {
        match &opts.init {
            Some(Init::Hf(dir)) => {
                let hf = crate::hf::import::open(dir).map_err(|e| TrainError::Io {
                    path: dir.clone(),
                    reason: format!("{e:#}"),
                })?;
                trainer.init_from_hf(&hf)?;
            }
            Some(Init::Checkpoint(file)) => {
                trainer.init_from(file)?;
            }
            None => {}
        }
        None
    };
    let resolved = dir.join("config.resolved.toml");
    std::fs::write(&resolved, trainer.config_text()).map_err(io_err(&resolved))?;
    let mut log = RunLog::open(dir, resumed_from, trainer.config_text()).map_err(io_err(dir))?;
    let t = &cfg.training;
    // A budgeted run's bar counts seconds of training, a step-bounded run's steps.
    let (length, unit) = match &t.budget {
        Some(b) => (b.seconds.ceil() as u64, "s"),
        None => (t.steps, ""),
    };
    let position = |tr: &Trainer| match &t.budget {
        Some(_) => tr.train_seconds as u64,
        None => tr.step,
    };
    let bar = if opts.progress {
        indicatif::ProgressBar::new(length)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}}{unit} {{msg}} eta {{eta}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(position(&trainer));
    let mut first = None;
    let mut last_train = Metrics::default();
    let mut last_eval = None;
    let mut probes = Vec::new();
    let (mut tokens, started) = (0usize, Instant::now());
    let mut window = (0usize, Instant::now());
    let stop_at = opts.stop_at.unwrap_or(u64::MAX);
    let t_cfg = &cfg.training;
    let rollback = t_cfg.on_divergence == crate::config::OnDivergence::Rollback;
    if rollback && !ckpt.exists() {
        // Something to roll back to before the first scheduled checkpoint.
        trainer.save_checkpoint(&ckpt)?;
    }
    while !trainer.finished() && trainer.step < stop_at {
        let (m, grad_norm, n_tok) = match trainer.train_step() {
            Ok(x) => x,
            Err(e) => match (rollback, divergence(&e)) {
                (true, Some((step, what))) if trainer.rollbacks < t_cfg.max_rollbacks => {
                    trainer.roll_back(&ckpt)?;
                    let note = format!(
                        "step {step}: {what}; rolled back to step {} with the learning rate ×{:e} (roll-back {} of at most {})",
                        trainer.step, trainer.lr_scale, trainer.rollbacks, t_cfg.max_rollbacks
                    );
                    eprintln!("{}: {note}", dir.display());
                    // The logs go back with the weights: nothing past the checkpoint stays.
                    drop(log);
                    log = RunLog::open(dir, Some(trainer.step), trainer.config_text())
                        .map_err(io_err(dir))?;
                    log.text("divergence", &note, trainer.step)
                        .map_err(io_err(dir))?;
                    bar.set_position(position(&trainer));
                    continue;
                }
                (true, Some((step, what))) => {
                    return Err(TrainError::Diverged {
                        step,
                        what,
                        rollbacks: trainer.rollbacks,
                    })
                }
                _ => return Err(e),
            },
        };
        let step = trainer.step;
        let end = trainer.finished();
        tokens += n_tok;
        window.0 += n_tok;
        if first.is_none() {
            first = Some(m.clone());
        }
        if step % t.log_every == 0 || end {
            let tps = window.0 as f64 / window.1.elapsed().as_secs_f64().max(1e-9);
            window = (0, Instant::now());
            let mut s = m.scalars();
            s.push(("lr".into(), trainer.last_lr));
            s.push(("grad_norm".into(), grad_norm));
            s.push(("tokens_per_second".into(), tps));
            s.push(("train_seconds".into(), trainer.train_seconds));
            log.scalars(step, "train", &s).map_err(io_err(dir))?;
            // Live dashboards: every logged step reaches the disk now, not at the next
            // checkpoint. A kill leaves lines past the checkpoint, which resume cuts back.
            log.flush().map_err(io_err(dir))?;
            bar.set_message(format!("loss {:.3} {:.0} tok/s", m.total_loss, tps));
        }
        if (t.eval_every > 0 && step % t.eval_every == 0) || end {
            if let Some(e) = trainer.evaluate()? {
                let mut scalars = e.scalars();
                // Held-out quality against training time, for budgets and speed comparisons.
                scalars.push(("train_seconds".into(), trainer.train_seconds));
                if end {
                    probes = trainer.probes()?;
                    scalars.extend(probes.iter().cloned());
                }
                log.scalars(step, "eval", &scalars).map_err(io_err(dir))?;
                log.flush().map_err(io_err(dir))?;
                last_eval = Some(e);
            }
            for (name, p) in trainer.bundle.named_params() {
                log.histogram(&format!("weights/{name}"), &p.to_vec(), step)
                    .map_err(io_err(dir))?;
            }
            for (module, state) in trainer.bundle.running_states() {
                for (vector, values) in state.vectors() {
                    let tag = format!("{}/{module}/{vector}", state.kind());
                    log.histogram(&tag, &values, step).map_err(io_err(dir))?;
                }
            }
        }
        if (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) || end || step == stop_at {
            log.flush().map_err(io_err(dir))?;
            trainer.save_checkpoint(&ckpt)?;
        }
        last_train = m;
        bar.set_position(position(&trainer));
    }
    if cfg.training.steps == 0 && trainer.step == 0 {
        // A run of zero steps (from model.init): its checkpoint is the init, scored as a
        // finished run's last step is.
        if let Some(e) = trainer.evaluate()? {
            probes = trainer.probes()?;
            let mut scalars = e.scalars();
            scalars.push(("train_seconds".into(), 0.0));
            scalars.extend(probes.iter().cloned());
            log.scalars(0, "eval", &scalars).map_err(io_err(dir))?;
            last_eval = Some(e);
        }
        trainer.save_checkpoint(&ckpt)?;
    }
    log.flush().map_err(io_err(dir))?;
    bar.finish_and_clear();
    Ok(Summary {
        steps: trainer.step,
        first: first.unwrap_or_default(),
        last_train,
        last_eval,
        tokens_per_second: tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
        resumed_from,
        finished: trainer.finished(),
        train_seconds: trainer.train_seconds,
        eval_fingerprint: trainer.eval_fingerprint().map(str::to_string),
        probes,
    })
}
