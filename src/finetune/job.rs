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
    /// The peak learning rate (one value of the entry's grid for this mode).
    pub lr: f64,
    pub seed: u64,
}

impl Job {
    /// `init=pretrained,mode=probe,seed=2` (embedding tasks have no mode); with a grid of
    /// learning rates, `init=pretrained,mode=finetune,lr=3e-4,seed=2`.
    pub fn variant(&self) -> String {
        if self.task.kind == Kind::Embed {
            return format!("init={},seed={}", self.init.name(), self.seed);
        }
        let lr = if self.spec.rates(self.mode).len() > 1 {
            format!("lr={:e},", self.lr)
        } else {
            String::new()
        };
        format!(
            "init={},mode={},{lr}seed={}",
            self.init.name(),
            self.mode.name(),
            self.seed
        )
    }
}

/// The runs of one `[[finetune]]` entry: `init × mode × lr × seeds` (embedding tasks:
/// `init × seeds`).
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
            for lr in spec.rates(mode) {
                for &seed in &spec.seeds {
                    out.push(Job {
                        task,
                        spec: spec.clone(),
                        init,
                        mode,
                        lr,
                        seed,
                    });
                }
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
    /// The split of train held out to choose the learning rate on, prepared as a dev split
    /// (`select_fraction`; `None` without one).
    pub select: Option<Box<Prepared>>,
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
    // The selection split is scored exactly as dev is: prepared as the dev of a split
    // without training examples.
    let mut splits = splits;
    let select = splits.take_select();
    let mut prepared = prepare_split(task, spec, splits, tok);
    if let Some(s) = select {
        let held = prepare_split(task, spec, s, tok);
        prepared.notes.push(format!(
            "{} training item(s) held out to choose the learning rate on",
            held.dev_items()
        ));
        prepared.select = Some(Box::new(held));
    }
    prepared
}

fn prepare_split(task: &Task, spec: &FinetuneSpec, splits: Splits, tok: &Tokenizer) -> Prepared {
    let len = spec.max_seq_len;
    match splits {
        Splits::Glue {
            train,
            dev,
            skipped,
            ..
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
                select: None,
            }
        }
        Splits::Squad {
            train,
            dev,
            misaligned,
            unanswerable,
            ..
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
                select: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_of_rates_is_one_run_per_rate_named_by_it() {
        let spec = FinetuneSpec {
            task: "rte".into(),
            mode: vec![Mode::Finetune, Mode::Probe],
            seeds: vec![1, 2],
            lr: vec![1e-4, 3e-4],
            ..Default::default()
        };
        let names: Vec<(String, f64)> = jobs(&spec).iter().map(|j| (j.variant(), j.lr)).collect();
        assert_eq!(
            names,
            [
                (
                    "init=pretrained,mode=finetune,lr=1e-4,seed=1".to_string(),
                    1e-4
                ),
                ("init=pretrained,mode=finetune,lr=1e-4,seed=2".into(), 1e-4),
                ("init=pretrained,mode=finetune,lr=3e-4,seed=1".into(), 3e-4),
                ("init=pretrained,mode=finetune,lr=3e-4,seed=2".into(), 3e-4),
                // One probe rate (the default): no `lr=` in the name, as before grids.
                ("init=pretrained,mode=probe,seed=1".into(), 1e-3),
                ("init=pretrained,mode=probe,seed=2".into(), 1e-3),
            ]
        );
    }
}
