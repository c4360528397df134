//! The fine-tuning loop: one downstream run of one task with one `init × mode × seed`, into a
//! run directory laid out like pretraining's (TensorBoard events, metrics.jsonl, summary.json).

use super::data::{self, Encoded, Splits, Target};
use super::head::{pool, Finetuned, Head};
use super::metrics;
use super::squad::{best_answer, Feature, Question};
use super::task::{Kind, Task};
use crate::config::{FinetuneSpec, Init, Mode, ModelConfig, OptimizerConfig, Pooling, Schedule};
use crate::data::Tokenizer;
use crate::model::ops::dropout;
use crate::model::{Act, Dev, Encoder, InputError, Inputs, Params};
use crate::rng::{stream, Rng};
use crate::train::log::RunLog;
use crate::train::optimizer::{clip_global_norm, learning_rate, AdamW};
use dfdx::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Read(#[from] super::glue::ReadError),
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Claim(#[from] crate::rundir::ClaimError),
    #[error(transparent)]
    Device(#[from] crate::model::DeviceError),
    #[error("{task}, step {step}: the loss is {value}; fine-tuning stopped (lower lr)")]
    NonFinite { task: String, step: u64, value: f32 },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FinetuneError + '_ {
    move |e| FinetuneError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// What an encoder for downstream runs is made from.
pub struct Source {
    pub model: ModelConfig,
    pub tokenizer: Arc<Tokenizer>,
    /// The pretraining checkpoint (`init = "pretrained"`).
    pub checkpoint: Option<PathBuf>,
}

/// One downstream run.
#[derive(Debug, Clone)]
pub struct Job {
    pub task: Task,
    pub spec: FinetuneSpec,
    pub init: Init,
    pub mode: Mode,
    pub seed: u64,
}

impl Job {
    /// `init=pretrained,mode=probe,seed=2` (embedding tasks have no mode).
    pub fn variant(&self) -> String {
        if self.task.kind == Kind::Embed {
            format!("init={},seed={}", self.init.name(), self.seed)
        } else {
            format!(
                "init={},mode={},seed={}",
                self.init.name(),
                self.mode.name(),
                self.seed
            )
        }
    }
}

/// The runs of one `[[finetune]]` entry: `init × mode × seeds` (embedding tasks: `init × seeds`).
pub fn jobs(spec: &FinetuneSpec) -> Vec<Job> {
    let Some(task) = super::task::find(&spec.task) else {
        return vec![];
    };
    let modes = if task.kind == Kind::Embed {
        vec![Mode::Probe]
    } else {
        spec.mode.clone()
    };
    let mut out = Vec::new();
    for &init in &spec.init {
        for &mode in &modes {
            for &seed in &spec.seeds {
                out.push(Job {
                    task,
                    spec: spec.clone(),
                    init,
                    mode,
                    seed,
                });
            }
        }
    }
    out
}

/// Sentence pairs for embedding similarity: token ids of both sides and the gold scores.
pub struct Pairs {
    pub a: Vec<Vec<u32>>,
    pub b: Vec<Vec<u32>>,
    pub gold: Vec<f64>,
}

/// A task's data tokenised once for all its runs.
pub struct Prepared {
    pub train: Vec<Encoded>,
    pub dev: Vec<Encoded>,
    /// SQuAD: the dev questions and the window each dev input came from.
    pub squad_dev: Option<(Vec<Question>, Vec<Feature>)>,
    /// Embeddings: both sentences of each dev pair and the gold scores.
    pub pairs: Option<Pairs>,
    /// What reading skipped, for the summary.
    pub notes: Vec<String>,
}

impl Prepared {
    /// How many dev items a score would average over: questions for SQuAD, pairs for
    /// embeddings, inputs otherwise.
    pub fn dev_items(&self) -> usize {
        match (&self.squad_dev, &self.pairs) {
            (Some((_, windows)), _) if windows.is_empty() => 0,
            (Some((questions, _)), _) => questions.len(),
            (None, Some(p)) => p.gold.len(),
            (None, None) => self.dev.len(),
        }
    }
}

pub fn prepare(task: &Task, spec: &FinetuneSpec, splits: Splits, tok: &Tokenizer) -> Prepared {
    let len = spec.max_seq_len;
    match splits {
        Splits::Glue {
            train,
            dev,
            skipped,
        } => {
            let mut notes = Vec::new();
            if skipped > 0 {
                notes.push(format!("{skipped} malformed row(s) skipped"));
            }
            let pairs = (task.kind == Kind::Embed).then(|| {
                let a = dev
                    .iter()
                    .map(|e| data::encode_single(tok, &e.a, len))
                    .collect();
                let b = dev
                    .iter()
                    .map(|e| data::encode_single(tok, e.b.as_deref().unwrap_or(""), len))
                    .collect();
                let gold = dev
                    .iter()
                    .map(|e| match e.label {
                        super::glue::Label::Score(x) => x as f64,
                        super::glue::Label::Class(c) => c as f64,
                    })
                    .collect();
                Pairs { a, b, gold }
            });
            Prepared {
                train: train
                    .iter()
                    .map(|e| data::encode_example(tok, e, len))
                    .collect(),
                dev: dev
                    .iter()
                    .map(|e| data::encode_example(tok, e, len))
                    .collect(),
                squad_dev: None,
                pairs,
                notes,
            }
        }
        Splits::Squad {
            train,
            dev,
            misaligned,
            unanswerable,
        } => {
            let train_f = data::encode_squad(tok, &train, spec);
            let dev_f = data::encode_squad(tok, &dev, spec);
            let counts = format!("{} train / {} dev questions", train.len(), dev.len());
            Prepared {
                train: train_f.iter().map(Encoded::from).collect(),
                dev: dev_f.iter().map(Encoded::from).collect(),
                squad_dev: Some((dev, dev_f)),
                pairs: None,
                notes: vec![
                    counts,
                    format!("{unanswerable} unanswerable question(s) left out, {misaligned} misaligned answer(s) dropped"),
                ],
            }
        }
    }
}

/// Final dev metrics of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub metrics: Vec<(String, f64)>,
    pub steps: u64,
    pub seconds: f64,
}

/// Pads a batch to its longest sequence and checks it against the encoder.
fn inputs(enc: &Encoder, items: &[&Encoded], pad: u32) -> Result<Inputs, InputError> {
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

/// Settings resolved from the entry and its mode.
struct Resolved {
    mean_pool: bool,
    optim: OptimizerConfig,
}

fn resolve(job: &Job, steps: u64) -> Resolved {
    let s = &job.spec;
    let mean_pool = match s.pooling {
        Pooling::Cls => false,
        Pooling::Mean => true,
        Pooling::Auto => job.mode == Mode::Probe || job.task.kind == Kind::Embed,
    };
    let lr = match job.mode {
        Mode::Finetune => s.lr.unwrap_or(1e-4),
        Mode::Probe => s.probe_lr.unwrap_or(1e-3),
    };
    Resolved {
        mean_pool,
        optim: OptimizerConfig {
            lr,
            betas: [0.9, 0.999],
            eps: 1e-6,
            weight_decay: s.weight_decay,
            warmup_steps: (s.warmup_fraction * steps as f64).round() as u64,
            schedule: Schedule::Linear,
            clip: s.clip,
        },
    }
}

/// The head's input for a batch: pooled `(B, H)` or token rows `(B·S, H)`.
fn represent<T: Tape<f32, Dev>>(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    inp: &Inputs,
    tape: T,
    rng: Option<&mut Rng>,
    mean_pool: bool,
) -> Act<T> {
    let train = rng.is_some();
    let mut rng = rng;
    let hidden = enc.forward(dev, inp, tape, rng.as_deref_mut());
    if head.pooled() {
        let pooled = pool(dev, enc, hidden, inp, mean_pool);
        // HF's sequence classifiers drop out the pooled vector before the classifier.
        if train {
            dropout(pooled, enc.cfg.dropout, rng)
        } else {
            pooled
        }
    } else {
        hidden
    }
}

fn param_values(p: &dyn Params) -> Vec<Vec<f32>> {
    p.named_params()
        .into_iter()
        .map(|(_, v)| v.to_vec())
        .collect()
}

fn sizes(p: &dyn Params) -> Vec<(String, usize)> {
    p.named_params()
        .into_iter()
        .map(|(n, v)| (n, v.shape().iter().product()))
        .collect()
}

/// Clips, steps AdamW and writes the new values back; returns the gradient norm.
fn update(
    params: &mut dyn Params,
    grads: &mut Gradients<f32, Dev>,
    optim: &mut AdamW,
    cfg: &OptimizerConfig,
    lr: f64,
) -> f64 {
    let mut g: Vec<Vec<f32>> = params
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
    let norm = clip_global_norm(&mut g, cfg.clip);
    let mut values = param_values(params);
    optim.update(cfg, lr, &mut values, &g);
    let mut it = values.into_iter();
    params.visit_mut("", &mut |_, mut p| {
        p.copy_from(&it.next().expect("one value per parameter"))
    });
    norm
}

/// A trained encoder and head with their final dev metrics.
pub struct Fitted {
    pub encoder: Encoder,
    pub head: Head,
    pub metrics: Vec<(String, f64)>,
    pub steps: u64,
}

/// The resolved settings of a run, as the text its directory and TensorBoard keep.
fn config_text(job: &Job, source: &Source) -> String {
    format!(
        "task = {:?}\ninit = {:?}\nmode = {:?}\nseed = {}\n\n[entry]\n{}\n[model]\n{}",
        job.task.name,
        job.init.name(),
        job.mode.name(),
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
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _lock = crate::rundir::claim(dir, crate::rundir::RunKind::Finetuning)?;
    let started = Instant::now();
    let text = config_text(job, source);
    let resolved = dir.join("config.resolved.toml");
    std::fs::write(&resolved, &text).map_err(io_err(&resolved))?;
    let mut log = RunLog::open(dir, None, &text).map_err(io_err(dir))?;
    let fitted = fit(job, source, prep, Some(&mut log))?;
    if fitted.steps == 0 {
        log.scalars(0, "eval", &fitted.metrics)
            .map_err(io_err(dir))?;
    }
    log.flush().map_err(io_err(dir))?;
    let outcome = Outcome {
        metrics: fitted.metrics,
        steps: fitted.steps,
        seconds: started.elapsed().as_secs_f64(),
    };
    let summary = serde_json::json!({
        "task": job.task.name,
        "metric": job.task.metric,
        "init": job.init.name(),
        "mode": if job.task.kind == Kind::Embed { "embed" } else { job.mode.name() },
        "seed": job.seed,
        "steps": outcome.steps,
        "train_inputs": prep.train.len(),
        "dev_inputs": prep.dev.len(),
        "seconds": outcome.seconds,
        "notes": prep.notes,
        "dev": outcome.metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
    });
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

/// Builds the encoder (pretrained or scratch) and the head, trains what the mode trains and
/// evaluates on dev after every epoch, logging to `log` when given.
pub fn fit(
    job: &Job,
    source: &Source,
    prep: &Prepared,
    mut log: Option<&mut RunLog>,
) -> Result<Fitted, FinetuneError> {
    // A score over zero examples would read as a real 0.000; refuse it instead.
    if prep.dev_items() == 0 {
        return Err(FinetuneError::Setup(format!(
            "{}: the dev split of `{}` yields no example to score (check the dev file, \
             dev_articles and max_train_examples)",
            job.spec.data, job.task.name
        )));
    }
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
            steps: 0,
        });
    }
    let per_epoch = prep.train.len().div_ceil(spec.batch_size) as u64;
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
    let mut optim = match job.mode {
        Mode::Finetune => AdamW::new(&sizes(&Finetuned {
            encoder: &mut enc,
            head: &mut head,
        })),
        Mode::Probe => AdamW::new(&sizes(&head)),
    };
    let mut order: Vec<usize> = (0..prep.train.len()).collect();
    let mut step = 0u64;
    let mut last = Vec::new();
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
                        OwnedTape::<f32, Dev>::default(),
                        Some(&mut drop_rng),
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
                    (value, update(&mut both, &mut g, &mut optim, &r.optim, lr))
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
                    .put_tape(OwnedTape::<f32, Dev>::default());
                    let (loss, _) = head.loss(&dev, rep, &targets, &inp);
                    let value = loss.array();
                    check(job, step, value)?;
                    let mut g = loss.backward();
                    (value, update(&mut head, &mut g, &mut optim, &r.optim, lr))
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
        last = evaluate(&dev, &enc, &head, job, prep, pad, r.mean_pool)?;
        let mut scalars = last.clone();
        scalars.push(("epoch".into(), epoch as f64));
        emit(step, "eval", &scalars)?;
    }
    Ok(Fitted {
        encoder: enc,
        head,
        metrics: last,
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

const EVAL_BATCH: usize = 64;

/// Frozen-encoder features of every input: one pooled vector, or one row per token.
fn features(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    items: &[Encoded],
    pad: u32,
    mean_pool: bool,
) -> Result<Vec<Vec<f32>>, FinetuneError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(EVAL_BATCH) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let inp = inputs(enc, &refs, pad)?;
        let rep = represent(dev, enc, head, &inp, NoneTape, None, mean_pool).as_vec();
        let h = enc.cfg.hidden;
        if head.pooled() {
            out.extend(rep.chunks(h).map(<[f32]>::to_vec));
        } else {
            for (i, e) in chunk.iter().enumerate() {
                let row0 = i * inp.seq;
                out.push(rep[row0 * h..(row0 + e.ids.len()) * h].to_vec());
            }
        }
    }
    Ok(out)
}

/// A batch of cached features as the head's input: `(B, H)`, or token rows `(B·seq, H)`
/// with zero rows for padding.
fn cached_rep(
    dev: &Dev,
    cache: &[Vec<f32>],
    chunk: &[usize],
    pooled: bool,
    seq: usize,
    h: usize,
) -> Act<NoneTape> {
    let rows = if pooled { 1 } else { seq };
    let mut out = vec![0.0; chunk.len() * rows * h];
    for (k, &i) in chunk.iter().enumerate() {
        let at = k * rows * h;
        out[at..at + cache[i].len()].copy_from_slice(&cache[i]);
    }
    dev.tensor_from_vec(out, (chunk.len() * rows, h))
}

/// Dev metrics: the task's headline number and its companions.
fn evaluate(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    job: &Job,
    prep: &Prepared,
    pad: u32,
    mean_pool: bool,
) -> Result<Vec<(String, f64)>, FinetuneError> {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(prep.dev.len());
    let mut loss = 0.0;
    for chunk in prep.dev.chunks(EVAL_BATCH) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let targets: Vec<Target> = refs.iter().map(|e| e.target).collect();
        let inp = inputs(enc, &refs, pad)?;
        let rep = represent(dev, enc, head, &inp, NoneTape, None, mean_pool);
        let (l, out) = head.loss(dev, rep, &targets, &inp);
        loss += l.array() as f64 * chunk.len() as f64;
        outputs.extend(out);
    }
    let mut m = vec![("loss".to_string(), loss / prep.dev.len().max(1) as f64)];
    match job.task.kind {
        Kind::Classify { classes } => {
            let pred: Vec<usize> = outputs
                .iter()
                .map(|o| {
                    (0..o.len())
                        .max_by(|&a, &b| o[a].total_cmp(&o[b]))
                        .unwrap_or(0)
                })
                .collect();
            let gold: Vec<usize> = prep
                .dev
                .iter()
                .map(|e| match e.target {
                    Target::Class(c) => c,
                    _ => 0,
                })
                .collect();
            m.push(("accuracy".into(), metrics::accuracy(&pred, &gold)));
            if classes == 2 {
                m.push(("f1".into(), metrics::f1(&pred, &gold)));
                m.push(("mcc".into(), metrics::matthews(&pred, &gold)));
            }
        }
        Kind::Regress => {
            let pred: Vec<f64> = outputs.iter().map(|o| o[0] as f64).collect();
            let gold: Vec<f64> = prep
                .dev
                .iter()
                .map(|e| match e.target {
                    Target::Score(x) => x as f64,
                    _ => 0.0,
                })
                .collect();
            m.push(("pearson".into(), metrics::pearson(&pred, &gold)));
            m.push(("spearman".into(), metrics::spearman(&pred, &gold)));
        }
        Kind::Span => {
            let (questions, feats) = prep.squad_dev.as_ref().expect("SQuAD dev windows");
            let mut by_q: Vec<Vec<usize>> = vec![Vec::new(); questions.len()];
            for (k, f) in feats.iter().enumerate() {
                by_q[f.question].push(k);
            }
            let (mut em, mut f1) = (0.0, 0.0);
            for (qi, q) in questions.iter().enumerate() {
                let views: Vec<(&Feature, &[f32], &[f32])> = by_q[qi]
                    .iter()
                    .map(|&k| {
                        let o = &outputs[k];
                        let s = o.len() / 2;
                        (&feats[k], &o[..s], &o[s..])
                    })
                    .collect();
                let answer = best_answer(&q.context, &views, 20, job.spec.max_answer_len);
                let golds = q.gold_texts();
                em += metrics::best_over(metrics::exact_match, &answer, &golds);
                f1 += metrics::best_over(metrics::span_f1, &answer, &golds);
            }
            let n = questions.len().max(1) as f64;
            m.push(("exact_match".into(), em / n));
            m.push(("f1".into(), f1 / n));
        }
        Kind::Embed | Kind::MlmProbe => {}
    }
    Ok(m)
}

/// Sentence-embedding similarity without training: cosine of the two pooled vectors.
fn embed_eval(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    prep: &Prepared,
    pad: u32,
    mean_pool: bool,
) -> Result<Vec<(String, f64)>, FinetuneError> {
    let Pairs { a, b, gold } = prep.pairs.as_ref().expect("embedding pairs");
    let embed = |texts: &[Vec<u32>]| -> Result<Vec<Vec<f32>>, FinetuneError> {
        let items: Vec<Encoded> = texts
            .iter()
            .map(|ids| Encoded {
                types: vec![0; ids.len()],
                ids: ids.clone(),
                target: Target::Score(0.0),
            })
            .collect();
        features(dev, enc, head, &items, pad, mean_pool)
    };
    Ok(super::embed::scores(&embed(a)?, &embed(b)?, gold))
}
