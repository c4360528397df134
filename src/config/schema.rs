//! The experiment-file schema: the file and its data, tokenizer, objective, optimizer, training
//! and Slurm sections (`[model]` is in `model.rs`, `[[finetune]]` in `downstream.rs`). Every
//! section has defaults so that a file states only what it changes; `deny_unknown_fields`
//! everywhere so a typo is an error, never a silent default.

use super::{FinetuneSpec, ModelConfig};
use serde::{Deserialize, Serialize};

/// One experiment file, before ablation expansion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name of the experiment; runs go to `runs/<name>/<variant>/`. Defaults to the file stem.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default = "default_objectives")]
    pub objectives: Vec<ObjectiveSpec>,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub training: TrainingConfig,
    /// Downstream tasks run on every finished pretraining run of the grid (`[[finetune]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finetune: Vec<FinetuneSpec>,
    /// Cluster resources for `pretext sweep --slurm` (flags override them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmConfig>,
    /// Axes of the ablation grid: a dotted key path (e.g. `model.norm`) to a list of values.
    /// Kept as raw TOML values: they are applied to the file's own table and re-validated.
    #[serde(default)]
    pub ablation: toml::Table,
}

fn default_objectives() -> Vec<ObjectiveSpec> {
    vec![ObjectiveSpec {
        name: "mlm".into(),
        weight: 1.0,
        options: toml::Table::new(),
    }]
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusFormat {
    /// Guess from each file's content: Gutenberg framing, WikiExtractor `<doc …>` lines,
    /// JSON lines with a `text` field, WikiText ` = Title = ` lines, else plain text. Decided
    /// per file, so one corpus can mix layouts (Wikipedia and books, as BERT's did).
    #[default]
    Auto,
    /// One sentence or paragraph a line; a blank line separates documents.
    Text,
    /// WikiText: ` = Title = ` lines start documents, ` = = Section = = ` lines are dropped.
    Wikitext,
    /// A Project Gutenberg book: framing stripped, wrapped lines joined into paragraphs,
    /// upper-case title lines start a new document (tale or chapter).
    Gutenberg,
    /// WikiExtractor output: `<doc id=… url=… title=…>` … `</doc>` is one document; its title
    /// line and the short section-heading lines ending in "." are not sentences.
    Wikiextractor,
    /// One JSON object a line with a string field `text` (what HF `datasets` exports): each
    /// line one document, its text's lines its paragraphs.
    Jsonl,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Corpus files; the word `embedded` stands for the small corpus shipped in the binary.
    /// Relative paths are resolved against the experiment file's folder.
    pub corpus: Vec<String>,
    pub format: CorpusFormat,
    /// Fraction of documents held out for evaluation (split by document, never by sentence).
    pub heldout_fraction: f64,
    /// Documents with fewer sentences than this are dropped (NSP/SOP need two segments).
    pub min_sentences: usize,
    /// Tokenise the corpus once into memory-mapped shards and train from them: for corpora
    /// larger than memory, and to skip re-tokenising in every run of a grid (see data::cache).
    pub cache: bool,
    /// Where the shard cache lives (relative to the experiment file's folder); by default
    /// `<runs>/<experiment>/cache`. Point several experiments at one folder to share it.
    pub cache_dir: Option<String>,
    /// Tokens per shard. The sampler holds one shard's instances at a time and shuffles within
    /// it (shards are visited in a fresh random order every epoch).
    pub shard_tokens: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            corpus: vec!["embedded".into()],
            format: CorpusFormat::Auto,
            heldout_fraction: 0.1,
            min_sentences: 2,
            cache: false,
            cache_dir: None,
            shard_tokens: 4_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// An existing HF `tokenizer.json` or BERT `vocab.txt`; if absent, WordPiece is trained
    /// on the training split of the corpus.
    pub path: Option<String>,
    pub vocab_size: usize,
    pub lowercase: bool,
    pub min_frequency: u64,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            path: None,
            vocab_size: 4000,
            lowercase: true,
            min_frequency: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: f64,
    /// Objective-specific settings; each objective validates its own.
    #[serde(default)]
    pub options: toml::Table,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// Where `eps` joins the update (see [`EpsPlacement`]). Left out of the resolved settings
    /// at its default, so runs and checkpoints from before the key existed still match.
    #[serde(skip_serializing_if = "EpsPlacement::is_default")]
    pub eps_placement: EpsPlacement,
    pub weight_decay: f64,
    pub warmup_steps: u64,
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value; 0 disables clipping.
    pub clip: f64,
}

/// Where AdamW's ε is added. The two differ only while `1 − β₂ᵗ` is small (the first few
/// thousand steps), where `hf-legacy` acts as a larger ε and takes smaller steps — enough
/// to put a small BERT 0.006 nats behind at step 100 (reports/hf-parity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpsPlacement {
    /// `m / (√v + ε)` scaled by `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`: HF's former `AdamW(correct_bias=True)`,
    /// the optimiser BERT recipes were written for; pretext's default since its first study.
    #[default]
    HfLegacy,
    /// `m̂ / (√v̂ + ε)` on the bias-corrected moments: `torch.optim.AdamW`, what the HF
    /// `Trainer` uses today.
    Torch,
}

impl EpsPlacement {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 5e-4,
            betas: [0.9, 0.999],
            eps: 1e-6,
            eps_placement: EpsPlacement::HfLegacy,
            weight_decay: 0.01,
            warmup_steps: 50,
            schedule: Schedule::Linear,
            clip: 1.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// The step limit; with `budget`, whichever comes first ends the run (left out, the
    /// budget alone does: see `budget::lift_step_limit`).
    pub steps: u64,
    /// Train for this much training time (`"60min"`) instead of a number of steps; the
    /// learning-rate schedule runs over the fraction of it spent (`config::budget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<super::Budget>,
    pub batch_size: usize,
    /// Grow the batch to `batch_size` over the first part of the run (`config::ramp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_ramp: Option<super::BatchRamp>,
    pub seq_len: usize,
    /// Shorter sequences for the first part of the run (`config::ramp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_phase: Option<super::ShortPhase>,
    pub grad_accum: usize,
    /// Probability of a shorter target length, as in BERT's create_pretraining_data.py.
    pub short_seq_prob: f64,
    pub eval_every: u64,
    pub eval_batches: usize,
    pub log_every: u64,
    pub checkpoint_every: u64,
    pub seed: u64,
    /// Worker threads for this run; 0 means all cores.
    pub threads: usize,
    /// What a non-finite loss or gradient does: stop the run (naming the step and the
    /// objective or tensor), or roll back to the last checkpoint and go on with the learning
    /// rate multiplied by `rollback_lr_factor`, at most `max_rollbacks` times.
    pub on_divergence: OnDivergence,
    pub rollback_lr_factor: f64,
    pub max_rollbacks: u32,
    /// The arithmetic of the matrix products (`Precision`). Left out of the resolved config
    /// when f32, so that runs and checkpoints from before the key keep their text.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Compute the last block at every token, not only at the rows the objectives read
    /// (`Encoder::forward_rows`: their attention queries and feed-forward): the same losses up
    /// to the order of float sums, and slower; for benchmarks against code that computes every
    /// row. Left out of the resolved config when false, as `precision` is when f32.
    #[serde(skip_serializing_if = "is_false")]
    pub dense_last_layer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `training.precision`: f32 throughout, or bf16 mixed precision as PyTorch's autocast and
/// HF's `--bf16` do it — the matrix products take bf16 operands and sum in f32; weights,
/// optimizer state, LayerNorm, softmax and the loss stay f32.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    pub(crate) fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnDivergence {
    Stop,
    Rollback,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            budget: None,
            batch_ramp: None,
            short_phase: None,
            batch_size: 16,
            seq_len: 64,
            grad_accum: 1,
            short_seq_prob: 0.1,
            eval_every: 100,
            eval_batches: 4,
            log_every: 10,
            checkpoint_every: 100,
            seed: 42,
            threads: 0,
            on_divergence: OnDivergence::Stop,
            rollback_lr_factor: 0.5,
            max_rollbacks: 3,
            precision: Precision::Fp32,
            dense_last_layer: false,
        }
    }
}
/// Resources of one Slurm array task (one run of the grid).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    /// Wall-clock limit per task, `HH:MM:SS` or `D-HH:MM:SS`. A task that hits it is
    /// requeued and continues from its last checkpoint.
    pub time: String,
    pub cpus_per_task: usize,
    /// Memory per task, as Slurm writes it (`8G`).
    pub mem: String,
    /// GPUs per task (`--gres=gpu:N`; needs a `cuda` build).
    pub gpus: usize,
    /// At most this many tasks at once (`--array=0-N%max`); 0: no limit.
    pub max_parallel: usize,
    /// Extra `#SBATCH` lines, verbatim (e.g. `--account=nlp`).
    pub extra: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            time: "04:00:00".into(),
            cpus_per_task: 4,
            mem: "8G".into(),
            gpus: 0,
            max_parallel: 0,
            extra: vec![],
        }
    }
}
