//! A task's data as the fine-tuning loop reads it: examples from disk, the fixed training
//! subset, and token sequences (`[CLS] a [SEP] b [SEP]`, or SQuAD windows).

use super::glue::{self, Example, Label, ReadError};
use super::squad::{self, Feature, Question, WindowSettings};
use super::task::{Kind, Task};
use crate::config::FinetuneSpec;
use crate::data::Tokenizer;
use crate::rng::stream;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One model input: token ids and segment ids, with its target.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Class(usize),
    Score(f32),
    /// Answer start and end positions (SQuAD).
    Span(usize, usize),
}

/// Both splits of a task, read and checked.
pub enum Splits {
    Glue {
        train: Vec<Example>,
        dev: Vec<Example>,
        /// Held out of train to choose the learning rate on (`select_fraction`).
        select: Vec<Example>,
        /// Rows skipped as known-bad (MNLI, QNLI).
        skipped: usize,
    },
    Squad {
        train: Vec<Question>,
        dev: Vec<Question>,
        select: Vec<Question>,
        /// Answers not found at their `answer_start`; unanswerable questions left out.
        misaligned: usize,
        unanswerable: usize,
    },
}

impl Splits {
    /// The selection split as a split of its own — its examples as dev, nothing to train
    /// on — leaving none here; `None` without one.
    pub fn take_select(&mut self) -> Option<Splits> {
        match self {
            Splits::Glue { select, .. } if !select.is_empty() => Some(Splits::Glue {
                train: vec![],
                dev: std::mem::take(select),
                select: vec![],
                skipped: 0,
            }),
            Splits::Squad { select, .. } if !select.is_empty() => Some(Splits::Squad {
                train: vec![],
                dev: std::mem::take(select),
                select: vec![],
                misaligned: 0,
                unanswerable: 0,
            }),
            _ => None,
        }
    }
}

fn first_existing(dir: &Path, names: &[&str]) -> Result<PathBuf, ReadError> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| ReadError::Io {
            file: dir.join(names.first().copied().unwrap_or("dev.tsv")),
            reason: "no such file".into(),
        })
}

/// The same subset for every seed, init and mode: runs differ only in what they compare.
fn subset<T>(mut v: Vec<T>, max: usize) -> Vec<T> {
    if max == 0 || v.len() <= max {
        return v;
    }
    v.shuffle(&mut stream(0, "finetune.subset"));
    v.truncate(max);
    v
}

/// Takes the selection split out of train: `fraction` of the examples (at least one), drawn
/// once and the same for every run; the rest keep their order.
fn hold_out<T>(train: Vec<T>, fraction: f64) -> (Vec<T>, Vec<T>) {
    if fraction <= 0.0 || train.len() < 2 {
        return (train, Vec::new());
    }
    let n = ((fraction * train.len() as f64).round() as usize).clamp(1, train.len() - 1);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut stream(0, "finetune.select"));
    let mut picked = vec![false; train.len()];
    for &i in &order[..n] {
        picked[i] = true;
    }
    let (mut rest, mut select) = (Vec::new(), Vec::new());
    for (x, p) in train.into_iter().zip(picked) {
        if p {
            select.push(x);
        } else {
            rest.push(x);
        }
    }
    (rest, select)
}

/// SQuAD's selection split: the questions of the last `fraction` of train's articles (at
/// least one article), so that no selection context was seen in training.
fn hold_out_articles(train: Vec<Question>, fraction: f64) -> (Vec<Question>, Vec<Question>) {
    let mut articles: Vec<usize> = train.iter().map(|q| q.article).collect();
    articles.sort_unstable();
    articles.dedup();
    if fraction <= 0.0 || articles.len() < 2 {
        return (train, Vec::new());
    }
    let n = ((fraction * articles.len() as f64).round() as usize).clamp(1, articles.len() - 1);
    let first_held = articles[articles.len() - n];
    train.into_iter().partition(|q| q.article < first_held)
}

pub fn load(task: &Task, spec: &FinetuneSpec, base_dir: &Path) -> Result<Splits, ReadError> {
    let data = base_dir.join(&spec.data);
    match task.kind {
        Kind::Span => load_squad(&data, spec),
        _ => {
            let layout = task.layout.expect("GLUE tasks have a layout");
            let dev = glue::read(&first_existing(&data, task.dev_files)?, &layout)?;
            let (train, skipped) = if task.kind == Kind::Embed {
                (Vec::new(), 0)
            } else {
                let t = glue::read(&data.join("train.tsv"), &layout)?;
                (t.examples, t.skipped)
            };
            let (train, select) = hold_out(train, spec.select_fraction);
            Ok(Splits::Glue {
                train: subset(train, spec.max_train_examples),
                select,
                dev: subset(dev.examples, spec.max_dev_examples),
                skipped: skipped + dev.skipped,
            })
        }
    }
}

fn load_squad(data: &Path, spec: &FinetuneSpec) -> Result<Splits, ReadError> {
    let (train, dev, misaligned) = if data.is_dir() {
        let pick = |prefix: &str| -> Result<PathBuf, ReadError> {
            let mut found: Vec<PathBuf> = std::fs::read_dir(data)
                .map_err(|e| ReadError::Io {
                    file: data.into(),
                    reason: e.to_string(),
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                        && p.extension().is_some_and(|e| e == "json")
                })
                .collect();
            found.sort();
            found.into_iter().next().ok_or_else(|| ReadError::Io {
                file: data.join(format!("{prefix}*.json")),
                reason: "no such file".into(),
            })
        };
        let t = squad::read(&pick("train")?)?;
        let d = squad::read(&pick("dev")?)?;
        (t.questions, d.questions, t.misaligned + d.misaligned)
    } else {
        let r = squad::read(data)?;
        if r.articles <= spec.dev_articles {
            return Err(ReadError::Row {
                file: data.into(),
                line: 1,
                message: format!(
                    "{} article(s): cannot hold out dev_articles = {} and still train",
                    r.articles, spec.dev_articles
                ),
            });
        }
        let cut = r.articles - spec.dev_articles;
        let (train, dev): (Vec<Question>, Vec<Question>) =
            r.questions.into_iter().partition(|q| q.article < cut);
        (train, dev, r.misaligned)
    };
    let answerable = |v: Vec<Question>| -> (Vec<Question>, usize) {
        let n = v.len();
        let kept: Vec<Question> = v
            .into_iter()
            .filter(|q| !q.impossible && !q.answers.is_empty())
            .collect();
        let dropped = n - kept.len();
        (kept, dropped)
    };
    let (train, u1) = answerable(train);
    let (dev, u2) = answerable(dev);
    let (train, select) = hold_out_articles(train, spec.select_fraction);
    Ok(Splits::Squad {
        train: subset(train, spec.max_train_examples),
        select,
        dev: subset(dev, spec.max_dev_examples),
        misaligned,
        unanswerable: u1 + u2,
    })
}

/// `[CLS] a [SEP] (b [SEP])`, truncating the longer text first until it fits `max_len`.
pub fn encode_example(tok: &Tokenizer, ex: &Example, max_len: usize) -> Encoded {
    let s = tok.special;
    let mut a = tok.encode(&ex.a);
    let mut b = ex.b.as_deref().map(|b| tok.encode(b));
    let room = max_len.saturating_sub(if b.is_some() { 3 } else { 2 });
    loop {
        let total = a.len() + b.as_ref().map_or(0, Vec::len);
        if total <= room {
            break;
        }
        match &mut b {
            Some(b) if b.len() > a.len() => b.pop(),
            _ => a.pop(),
        };
    }
    let mut ids = vec![s.cls];
    ids.extend(&a);
    ids.push(s.sep);
    let mut types = vec![0; ids.len()];
    if let Some(b) = b {
        ids.extend(&b);
        ids.push(s.sep);
        types.resize(ids.len(), 1);
    }
    Encoded {
        ids,
        types,
        target: match ex.label {
            Label::Class(c) => Target::Class(c),
            Label::Score(x) => Target::Score(x),
        },
    }
}

/// A single text as `[CLS] text [SEP]` (sentence embeddings).
pub fn encode_single(tok: &Tokenizer, text: &str, max_len: usize) -> Vec<u32> {
    let mut ids = vec![tok.special.cls];
    let t = tok.encode(text);
    ids.extend(t.iter().take(max_len.saturating_sub(2)));
    ids.push(tok.special.sep);
    ids
}

/// SQuAD windows of every question; contexts are tokenised once each.
pub fn encode_squad(tok: &Tokenizer, questions: &[Question], spec: &FinetuneSpec) -> Vec<Feature> {
    let settings = WindowSettings {
        max_seq_len: spec.max_seq_len,
        doc_stride: spec.doc_stride,
        max_query_len: spec.max_query_len,
    };
    let mut contexts: HashMap<*const String, Vec<(u32, usize, usize)>> = HashMap::new();
    let mut out = Vec::new();
    for (qi, q) in questions.iter().enumerate() {
        let ctx = contexts
            .entry(std::sync::Arc::as_ptr(&q.context))
            .or_insert_with(|| tok.encode_with_offsets(&q.context));
        let query = tok.encode(&q.question);
        out.extend(squad::windows(qi, q, &query, ctx, tok.special, &settings));
    }
    out
}

impl From<&Feature> for Encoded {
    fn from(f: &Feature) -> Self {
        Encoded {
            ids: f.ids.clone(),
            types: f.types.clone(),
            target: Target::Span(f.start, f.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_split_is_a_fixed_disjoint_share_of_train() {
        let train: Vec<usize> = (0..1000).collect();
        let (rest, select) = hold_out(train.clone(), 0.1);
        assert_eq!(select.len(), 100);
        assert_eq!(rest.len(), 900);
        let mut all: Vec<usize> = rest.iter().chain(&select).copied().collect();
        all.sort_unstable();
        assert_eq!(all, train, "every example once, in one split");
        assert!(
            rest.windows(2).all(|w| w[0] < w[1]),
            "train keeps its order"
        );
        // Drawn, not the head or the tail of the file; and the same on every call.
        assert!(select.iter().any(|&i| i < 500) && select.iter().any(|&i| i >= 500));
        assert_eq!(hold_out(train.clone(), 0.1).1, select);
        // None asked: train untouched; a tiny train keeps at least one example.
        assert_eq!(hold_out(train.clone(), 0.0), (train, vec![]));
        assert_eq!(hold_out(vec![1, 2], 0.4).1.len(), 1);
    }

    #[test]
    fn squad_selection_holds_out_whole_articles_from_the_end() {
        let q = |article: usize| Question {
            id: format!("q{article}"),
            article,
            title: String::new(),
            question: String::new(),
            context: Default::default(),
            answers: vec![],
            golds: vec![],
            impossible: false,
        };
        let train: Vec<Question> = [0, 0, 1, 2, 2, 2, 3, 4, 4, 5].map(q).into();
        let (rest, select) = hold_out_articles(train, 0.34);
        let arts = |v: &[Question]| v.iter().map(|q| q.article).collect::<Vec<_>>();
        assert_eq!(arts(&select), [4, 4, 5], "the last two of six articles");
        assert_eq!(arts(&rest), [0, 0, 1, 2, 2, 2, 3]);
    }
}
