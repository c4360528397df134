//! What the fine-tuning tests build their tasks from: a whole-word vocabulary, a one-layer
//! model, a job, and a sentiment task decided by one word among fillers.

use pretext::config::{FinetuneSpec, Init, Mode, ModelConfig};
use pretext::data::Tokenizer;
use pretext::finetune::glue::{Example, Label};
use pretext::finetune::task;
use pretext::finetune::Job;
use pretext::rng::stream;
use rand::{seq::SliceRandom, Rng};
use std::sync::Arc;

/// A WordPiece vocabulary of whole words, so tests control tokenisation exactly.
pub fn tokenizer(words: &[&str], tag: &str) -> Arc<Tokenizer> {
    let dir = super::scratch(&format!("ft-{tag}"));
    let mut vocab: Vec<&str> = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    vocab.extend(words);
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n")).unwrap();
    Arc::new(Tokenizer::load(&path, true).unwrap())
}

/// A one-layer model of width 32: fine-tuning tests train it in a second.
pub fn tiny_model() -> ModelConfig {
    ModelConfig {
        layers: 1,
        hidden: 32,
        heads: 2,
        ffn: 64,
        max_positions: 64,
        ..ModelConfig::default()
    }
}

/// The job of fine-tuning `task` with `spec`, seed 3.
pub fn job(task: &str, init: Init, mode: Mode, spec: FinetuneSpec) -> Job {
    Job {
        task: task::find(task).unwrap(),
        lr: spec.rates(mode)[0],
        spec: FinetuneSpec {
            task: task.into(),
            ..spec
        },
        init,
        mode,
        seed: 3,
    }
}

/// The words a task's texts are made of, besides the words that decide them.
pub const FILLER: &[&str] = &[
    "the", "film", "plot", "actor", "was", "very", "a", "story", "it", "scene",
];

/// Sentiment decided by one word among fillers.
pub fn sentiment(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = stream(seed, "test.sentiment");
    (0..n)
        .map(|_| {
            let mut words: Vec<&str> = (0..rng.gen_range(4..9))
                .map(|_| *FILLER.choose(&mut rng).unwrap())
                .collect();
            let good = rng.gen_bool(0.5);
            let at = rng.gen_range(0..=words.len());
            words.insert(at, if good { "good" } else { "bad" });
            Example {
                a: words.join(" "),
                b: None,
                label: Label::Class(usize::from(good)),
            }
        })
        .collect()
}
