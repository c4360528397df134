//! What a `[[finetune]]` entry runs and on what: the encoder's source, the `init × mode ×
//! seed` jobs, and a task's data tokenised once for all of them.

use super::data::{self, Encoded, Splits};
use super::squad::{Feature, Question};
use super::task::{Kind, Task};
use crate::config::{FinetuneSpec, Init, Mode, ModelConfig};
use crate::data::Tokenizer;
use std::path::PathBuf;
use std::sync::Arc;

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
