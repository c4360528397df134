//! Dev scores of a downstream run: the task's metrics from the head's outputs, features of a
//! frozen encoder (probes, embeddings), and sentence-embedding similarity.

use super::data::{Encoded, Target};
use super::head::Head;
use super::metrics;
use super::predictions::{label_text, Predictions};
use super::run::{inputs, represent, FinetuneError};
use super::squad::{best_answer, Feature};
use super::task::Kind;
use super::{Job, Prepared};
use crate::model::{self, Act, Dev, Encoder};
use dfdx::prelude::*;

const EVAL_BATCH: usize = 64;

/// Frozen-encoder features of every input: one pooled vector, or one row per token.
pub(super) fn features(
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
        let rep = represent(dev, enc, head, &inp, NoneTape, model::Mode::Eval, mean_pool).as_vec();
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
pub(super) fn cached_rep(
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

/// Dev metrics (the task's headline number and its companions) and the predictions they
/// were computed from.
pub(super) struct Scored {
    pub metrics: Vec<(String, f64)>,
    pub predictions: Option<Predictions>,
}

/// Scores the dev split.
pub(super) fn evaluate(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    job: &Job,
    prep: &Prepared,
    pad: u32,
    mean_pool: bool,
) -> Result<Scored, FinetuneError> {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(prep.dev.len());
    let mut loss = 0.0;
    for chunk in prep.dev.chunks(EVAL_BATCH) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let targets: Vec<Target> = refs.iter().map(|e| e.target).collect();
        let inp = inputs(enc, &refs, pad)?;
        let rep = represent(dev, enc, head, &inp, NoneTape, model::Mode::Eval, mean_pool);
        let (l, out) = head.loss(dev, rep, &targets, &inp);
        loss += l.array() as f64 * chunk.len() as f64;
        outputs.extend(out);
    }
    let mut m = vec![("loss".to_string(), loss / prep.dev.len().max(1) as f64)];
    let labels = job.task.layout.map(|l| l.labels);
    let predictions = match job.task.kind {
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
            Some(Predictions::Rows(
                pred.iter().map(|&c| label_text(labels, c)).collect(),
            ))
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
            Some(Predictions::Rows(
                pred.iter().map(|x| format!("{x:.3}")).collect(),
            ))
        }
        Kind::Span => {
            let (questions, feats) = prep.squad_dev.as_ref().expect("SQuAD dev windows");
            let mut by_q: Vec<Vec<usize>> = vec![Vec::new(); questions.len()];
            for (k, f) in feats.iter().enumerate() {
                by_q[f.question].push(k);
            }
            let (mut em, mut f1) = (0.0, 0.0);
            let mut answers = Vec::with_capacity(questions.len());
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
                em += metrics::best_over(metrics::exact_match, &answer, golds);
                f1 += metrics::best_over(metrics::span_f1, &answer, golds);
                answers.push((q.id.clone(), answer));
            }
            let n = questions.len().max(1) as f64;
            m.push(("exact_match".into(), em / n));
            m.push(("f1".into(), f1 / n));
            Some(Predictions::Answers(answers))
        }
        Kind::Embed | Kind::MlmProbe => None,
    };
    Ok(Scored {
        metrics: m,
        predictions,
    })
}

/// Sentence-embedding similarity without training: cosine of the two pooled vectors.
pub(super) fn embed_eval(
    dev: &Dev,
    enc: &Encoder,
    head: &Head,
    prep: &Prepared,
    pad: u32,
    mean_pool: bool,
) -> Result<Vec<(String, f64)>, FinetuneError> {
    let super::job::Pairs { a, b, gold } = prep.pairs.as_ref().expect("embedding pairs");
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
