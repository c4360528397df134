//! `[[finetune]]` entries: a downstream task, its encoder inits, modes and hyper-parameters.

use serde::{Deserialize, Serialize};

/// Where a downstream run's encoder weights come from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// The pretraining run's final checkpoint.
    Pretrained,
    /// The same architecture, freshly initialised (BERT init from the fine-tuning seed).
    Scratch,
}

/// What a downstream run trains.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every parameter, encoder included (BERT's fine-tuning).
    Finetune,
    /// Only the task head, on features of the frozen encoder (the feature-based approach).
    Probe,
}

/// How a sequence becomes one vector for classification, regression and embeddings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// `cls` for fine-tuning (as HF's BertForSequenceClassification) and `mean` for probes
    /// and embeddings (a pooler the pretraining objectives never trained is a poor feature).
    Auto,
    /// BERT's pooler: `tanh(W h_[CLS] + b)`.
    Cls,
    /// Mean of the last hidden states over real tokens.
    Mean,
}

impl Init {
    pub fn name(self) -> &'static str {
        match self {
            Init::Pretrained => "pretrained",
            Init::Scratch => "scratch",
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Finetune => "finetune",
            Mode::Probe => "probe",
        }
    }
}

/// A value or a list of values; `init = "scratch"` and `init = ["pretrained", "scratch"]`
/// both read as a list.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(x) => vec![x],
        OneOrMany::Many(v) => v,
    })
}

/// One `[[finetune]]` entry: a task, its data, and the grid of `init × mode × seeds` runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneSpec {
    /// A registered task (`pretext list`): sst2, cola, mrpc, rte, stsb, …, squad, sts-embed.
    pub task: String,
    /// The entry's folder under `finetune/` and its name in reports; defaults to the task.
    /// Two entries of one task (say, SST-2 with 1,000 and with 8,000 examples) need two names.
    pub name: Option<String>,
    /// GLUE: the task's folder (train.tsv, dev.tsv). SQuAD: a json file, split by article
    /// (the last `dev_articles` are held out), or a folder with train*.json and dev*.json.
    /// Relative paths are resolved against the experiment file's folder.
    pub data: String,
    #[serde(deserialize_with = "one_or_many")]
    pub init: Vec<Init>,
    #[serde(deserialize_with = "one_or_many")]
    pub mode: Vec<Mode>,
    /// One run per seed (head init, dropout, data order; and the encoder init for scratch).
    pub seeds: Vec<u64>,
    pub epochs: usize,
    /// Peak learning rate of `mode = "finetune"` runs; unset: 1e-4. A list is a grid: one
    /// run per rate, and with `select_fraction` the report picks the rate for each init on
    /// a split of train (as BERT tuned it per task), so that no init is judged at a rate
    /// that suits only the other.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub lr: Vec<f64>,
    /// Peak learning rate of `mode = "probe"` runs (a lone linear head on fixed features
    /// wants a larger one); unset: 1e-3. A list is a grid, as for `lr`.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub probe_lr: Vec<f64>,
    /// The share of train held out to choose the learning rate on (0: none). Every run
    /// scores it after training beside dev; the split is the same for every run (GLUE: a
    /// fixed random share of the examples; SQuAD: the last articles of train).
    pub select_fraction: f64,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub warmup_fraction: f64,
    pub weight_decay: f64,
    pub clip: f64,
    /// Use at most this many training examples (0: all), the same subset for every run.
    pub max_train_examples: usize,
    /// Evaluate on at most this many dev examples (0: all).
    pub max_dev_examples: usize,
    pub pooling: Pooling,
    /// SQuAD: step between context windows, in tokens (BERT's doc_stride).
    pub doc_stride: usize,
    pub max_query_len: usize,
    pub max_answer_len: usize,
    /// SQuAD from one file: how many of its last articles are the dev split.
    pub dev_articles: usize,
    pub log_every: u64,
    /// The matrix products' arithmetic, as `training.precision` (fp32, or bf16 mixed
    /// precision); left out of the resolved config when fp32.
    #[serde(skip_serializing_if = "super::Precision::is_fp32")]
    pub precision: super::Precision,
}

impl FinetuneSpec {
    /// The learning rates of `mode` runs: the entry's grid, or the mode's default.
    pub fn rates(&self, mode: Mode) -> Vec<f64> {
        let (list, default) = match mode {
            Mode::Finetune => (&self.lr, 1e-4),
            Mode::Probe => (&self.probe_lr, 1e-3),
        };
        if list.is_empty() {
            vec![default]
        } else {
            list.clone()
        }
    }

    /// The folder name of this entry's runs.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.task)
    }
}

impl Default for FinetuneSpec {
    fn default() -> Self {
        Self {
            task: String::new(),
            name: None,
            data: String::new(),
            init: vec![Init::Pretrained],
            mode: vec![Mode::Finetune],
            seeds: vec![1],
            epochs: 3,
            lr: vec![],
            probe_lr: vec![],
            select_fraction: 0.0,
            batch_size: 32,
            max_seq_len: 128,
            warmup_fraction: 0.1,
            weight_decay: 0.01,
            clip: 1.0,
            max_train_examples: 0,
            max_dev_examples: 0,
            pooling: Pooling::Auto,
            doc_stride: 64,
            max_query_len: 32,
            max_answer_len: 30,
            dev_articles: 1,
            log_every: 10,
            precision: super::Precision::Fp32,
        }
    }
}
