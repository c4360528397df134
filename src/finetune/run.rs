//! The fine-tuning loop: one downstream run of one task with one `init × mode × seed`, into a
//! run directory laid out like pretraining's (TensorBoard events, metrics.jsonl, summary.json).

use super::data::{Encoded, Target};
use super::error::io_err;
pub use super::error::FinetuneError;
use super::head::{pool, Finetuned, Head};
use super::job::{Job, Prepared, Source};
use super::score::{cached_rep, embed_eval, evaluate, features};
use super::step::{resolve, update, Optimiser};
use super::task::Kind;
use crate::config::{Init, Mode};
use crate::model::ops::dropout;
use crate::model::{self, Act, Dev, Encoder, InputError, Inputs};
use crate::model::{Taped, TrainTape};
use crate::rng::stream;
use crate::train::log::RunLog;
use crate::train::optimizer::{learning_rate, AdamW};
use dfdx::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Final dev metrics of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub metrics: Vec<(String, f64)>,
    pub steps: u64,
    pub seconds: f64,
    /// The run directory's `predictions.tsv` / `predictions.json`, if the task predicts.
    pub predictions: Option<PathBuf>,
}

/// Pads a batch to its longest sequence and checks it against the encoder.
pub(super) fn inputs(enc: &Encoder, items: &[&Encoded], pad: u32) -> Result<Inputs, InputError> {
    let seq = items.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let b = items.len();
    let (mut ids, mut types, mut mask) = (vec![pad; b * seq], vec![0; b * seq], vec![0.0; b * seq]);
    for (i, e) in items.iter().enumerate() {
        for j in 0..e.ids.len() {
            ids[i * seq + j] = e.ids[j];
            types[i * seq + j] = e.types[j];
            mask[i * seq + j] = 1.0;
        }
    }
    enc.inputs(b, seq, &ids, &types, &mask)
}

/// The head's input for a batch: pooled `(B, H)` or token rows `(B·S, H)`. A [CLS]-pooled
/// head reads one row a sequence, so the last block computes only those
/// (`Encoder::forward_rows`).
pub(super) fn represent<T: Taped>(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    inp: &Inputs,
    tape: T,
    mut mode: model::Mode<'_>,
    mean_pool: bool,
) -> Act<T> {
    let cls = (head.pooled() && !mean_pool).then(|| crate::objectives::cls_rows(inp));
    let hidden = enc.forward_rows(dev, inp, tape, mode.reborrow(), cls.as_deref());
    if head.pooled() {
        let pooled = pool(dev, enc, hidden, inp, mean_pool);
        // HF's sequence classifiers drop out the pooled vector before the classifier.
        match mode {
            model::Mode::Train(rng) => dropout(pooled, enc.cfg.dropout, Some(rng)),
            model::Mode::Eval => pooled,
        }
    } else {
        hidden
    }
}

/// A trained encoder and head with their final dev metrics.
pub struct Fitted {
    pub encoder: Encoder,
    pub head: Head,
    pub metrics: Vec<(String, f64)>,
    /// The dev predictions behind `metrics` (none for embedding similarity).
    pub predictions: Option<super::Predictions>,
    /// The same metrics on the selection split of train (empty without one).
    pub select: Vec<(String, f64)>,
    pub steps: u64,
}

/// The resolved settings of a run, as the text its directory and TensorBoard keep.
fn config_text(job: &Job, source: &Source) -> String {
    format!(
        "task = {:?}\ninit = {:?}\nmode = {:?}\nlr = {:e}\nseed = {}\n\n[entry]\n{}\n[model]\n{}",
        job.task.name,
        job.init.name(),
        job.mode.name(),
        job.lr,
        job.seed,
        toml::to_string(&job.spec).unwrap_or_default(),
        toml::to_string(&source.model).unwrap_or_default()
    )
}

/// Trains and evaluates one job in `dir`; writes `summary.json` last, so its presence means
/// the run finished. (A killed run starts over: downstream runs are minutes long.)
pub fn run(
    job: &Job,
    source: &Source,
    prep: &Prepared,
    dir: &Path,
) -> Result<Outcome, FinetuneError> {
    preflight(job, source, prep)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _lock = crate::rundir::claim(dir, crate::rundir::RunKind::Finetuning)?;
    let started = Instant::now();
    let text = config_text(job, source);
    let resolved = dir.join("config.resolved.toml");
    std::fs::write(&resolved, &text).map_err(io_err(&resolved))?;
    let mut log = RunLog::open(dir, None, &text).map_err(io_err(dir))?;
    let fitted = fit_checked(job, source, prep, Some(&mut log))?;
    if fitted.steps == 0 {
        log.scalars(0, "eval", &fitted.metrics)
            .map_err(io_err(dir))?;
    }
    log.flush().map_err(io_err(dir))?;
    let predictions = match &fitted.predictions {
        Some(p) => Some(p.write(dir).map_err(io_err(dir))?),
        None => None,
    };
    let outcome = Outcome {
        predictions,
        metrics: fitted.metrics,
        steps: fitted.steps,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut summary = serde_json::json!({
        "task": job.task.name,
        "metric": job.task.metric,
        "init": job.init.name(),
        "mode": if job.task.kind == Kind::Embed { "embed" } else { job.mode.name() },
        "lr": job.lr,
        "seed": job.seed,
        "steps": outcome.steps,
        "train_inputs": prep.train.len(),
        "dev_inputs": prep.dev.len(),
        "seconds": outcome.seconds,
        "notes": prep.notes,
        "dev": object(&outcome.metrics),
    });
    if !fitted.select.is_empty() {
        summary["select"] = object(&fitted.select);
        summary["select_inputs"] = prep.select.as_ref().map_or(0, |s| s.dev.len()).into();
    }
    let path = crate::rundir::summary_path(dir);
    crate::rundir::write_atomically(
        &path,
        serde_json::to_string_pretty(&summary)
            .expect("a JSON value serialises")
            .as_bytes(),
    )
    .map_err(io_err(&path))?;
    Ok(outcome)
}

/// Named metrics as a JSON object, as summary.json holds them.
fn object(metrics: &[(String, f64)]) -> serde_json::Value {
    metrics
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What is refused once the data is read, before a run folder is written: a dev split with no
/// example (a score over none would read as a real 0.000), and a training batch the machine
/// cannot hold (a failed allocation aborts the process without naming the key).
fn preflight(job: &Job, source: &Source, prep: &Prepared) -> Result<(), FinetuneError> {
    if prep.dev_items() == 0 {
        return Err(FinetuneError::Setup(format!(
            "{}: the dev split of `{}` yields no example to score (check the dev file, \
             dev_articles and max_train_examples)",
            job.spec.data, job.task.name
        )));
    }
    let sequences = job.spec.batch_size.min(prep.train.len());
    let available = crate::alloc::machine_memory().unwrap_or(f64::INFINITY);
    let vocab = source.tokenizer.vocab_size();
    let (model, len) = (&source.model, job.spec.max_seq_len);
    match crate::config::memory::refuse_finetune(model, vocab, sequences, len, available) {
        Some(why) => Err(FinetuneError::Setup(format!(
            "{}: batch_size = {} (--batch-size): {why}; lower batch_size or max_seq_len",
            job.variant(),
            job.spec.batch_size
        ))),
        None => Ok(()),
    }
}

/// Builds the encoder (pretrained or scratch) and the head, trains what the mode trains and
/// evaluates on dev after every epoch, logging to `log` when given; refuses first what
/// `preflight` refuses.
pub fn fit(
    job: &Job,
    source: &Source,
    prep: &Prepared,
    log: Option<&mut RunLog>,
) -> Result<Fitted, FinetuneError> {
    preflight(job, source, prep)?;
    fit_checked(job, source, prep, log)
}

/// `fit` once `preflight` has passed (`run` checks before it makes the run folder).
fn fit_checked(
    job: &Job,
    source: &Source,
    prep: &Prepared,
    mut log: Option<&mut RunLog>,
) -> Result<Fitted, FinetuneError> {
    let (precision, note) = crate::model::precision::resolve(job.spec.precision);
    if let Some(note) = note {
        eprintln!("{}: {note}", job.variant());
    }
    // Training, features and evaluation all run in the entry's precision.
    let _products = crate::model::precision::autocast(precision);
    let tok = &source.tokenizer;
    let dev = crate::model::device(job.seed)?;
    let mut enc = Encoder::new(
        &dev,
        &source.model,
        tok.vocab_size(),
        &mut stream(job.seed, "finetune.init"),
    );
    if job.init == Init::Pretrained {
        let ckpt = source.checkpoint.as_ref().ok_or_else(|| {
            FinetuneError::Setup("init = \"pretrained\" needs a pretraining checkpoint".into())
        })?;
        crate::train::checkpoint::load_encoder(ckpt, &mut enc)?;
    }
    let mut head = Head::new(
        &dev,
        job.task.kind,
        source.model.hidden,
        source.model.init_std,
        &mut stream(job.seed, "finetune.head"),
    );
    let pad = tok.special.pad;
    let spec = &job.spec;
    let mut emit =
        |step: u64, split: &str, values: &[(String, f64)]| -> Result<(), FinetuneError> {
            if let Some(log) = log.as_deref_mut() {
                log.scalars(step, split, values)
                    .map_err(io_err(&log.dir.clone()))?;
            }
            Ok(())
        };

    if job.task.kind == Kind::Embed {
        let r = resolve(job, 0);
        let metrics = embed_eval(&dev, &enc, &head, prep, pad, r.mean_pool)?;
        return Ok(Fitted {
            encoder: enc,
            head,
            metrics,
            predictions: None,
            select: vec![],
            steps: 0,
        });
    }
    let per_epoch = prep.train.len().div_ceil(spec.batch_size) as u64;
    // `epochs` is at most 1,000,000 (config's range), so this cannot overflow.
    let total = per_epoch * spec.epochs as u64;
    if total == 0 {
        return Err(FinetuneError::Setup(format!(
            "{}: no training examples",
            job.task.name
        )));
    }
    let r = resolve(job, total);
    let mut data_rng = stream(job.seed, "finetune.data");
    let mut drop_rng = stream(job.seed, "finetune.dropout");
    // Probes train on features of the frozen encoder, computed once, without dropout.
    let cache = (job.mode == Mode::Probe)
        .then(|| features(&dev, &enc, &head, &prep.train, pad, r.mean_pool))
        .transpose()?;
    let adamw = match job.mode {
        Mode::Finetune => AdamW::for_params(&Finetuned {
            encoder: &mut enc,
            head: &mut head,
        }),
        Mode::Probe => AdamW::for_params(&head),
    };
    let mut optim = Optimiser {
        adamw,
        moments: None,
    };
    let mut order: Vec<usize> = (0..prep.train.len()).collect();
    let mut step = 0u64;
    let mut last = None;
    for epoch in 1..=spec.epochs {
        order.shuffle(&mut data_rng);
        for chunk in order.chunks(spec.batch_size) {
            step += 1;
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &prep.train[i]).collect();
            let targets: Vec<Target> = items.iter().map(|e| e.target).collect();
            let inp = inputs(&enc, &items, pad)?;
            let lr = learning_rate(&r.optim, step, total);
            let (loss, norm) = match &cache {
                None => {
                    let rep = represent(
                        &dev,
                        &enc,
                        &head,
                        &inp,
                        TrainTape::default(),
                        model::Mode::Train(&mut drop_rng),
                        r.mean_pool,
                    );
                    let (loss, _) = head.loss(&dev, rep, &targets, &inp);
                    let value = loss.array();
                    check(job, step, value)?;
                    let mut g = loss.backward();
                    let mut both = Finetuned {
                        encoder: &mut enc,
                        head: &mut head,
                    };
                    let norm = update(
                        &mut both,
                        &mut g,
                        &mut optim,
                        &dev,
                        &r.optim,
                        (lr, step, job),
                    )?;
                    (value, norm)
                }
                Some(cache) => {
                    let rep = cached_rep(
                        &dev,
                        cache,
                        chunk,
                        head.pooled(),
                        inp.seq,
                        source.model.hidden,
                    )
                    .put_tape(TrainTape::default());
                    let (loss, _) = head.loss(&dev, rep, &targets, &inp);
                    let value = loss.array();
                    check(job, step, value)?;
                    let mut g = loss.backward();
                    let norm = update(
                        &mut head,
                        &mut g,
                        &mut optim,
                        &dev,
                        &r.optim,
                        (lr, step, job),
                    )?;
                    (value, norm)
                }
            };
            if step.is_multiple_of(spec.log_every) || step == total {
                emit(
                    step,
                    "train",
                    &[
                        ("loss".into(), loss as f64),
                        ("lr".into(), lr),
                        ("grad_norm".into(), norm),
                    ],
                )?;
            }
        }
        let scored = evaluate(&dev, &enc, &head, job, prep, pad, r.mean_pool)?;
        let mut scalars = scored.metrics.clone();
        scalars.push(("epoch".into(), epoch as f64));
        emit(step, "eval", &scalars)?;
        last = Some(scored);
    }
    let last = last.expect("at least one epoch: the entry's rules refuse epochs = 0");
    // The learning rate is chosen on this split, never on dev (`select_fraction`).
    let select = match &prep.select {
        Some(held) => {
            let scored = evaluate(&dev, &enc, &head, job, held, pad, r.mean_pool)?;
            emit(step, "select", &scored.metrics)?;
            scored.metrics
        }
        None => vec![],
    };
    Ok(Fitted {
        encoder: enc,
        head,
        metrics: last.metrics,
        predictions: last.predictions,
        select,
        steps: step,
    })
}

fn check(job: &Job, step: u64, value: f32) -> Result<(), FinetuneError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(FinetuneError::NonFinite {
            task: job.task.name.into(),
            step,
            value,
        })
    }
}
