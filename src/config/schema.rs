//! The experiment-file schema. Every section has defaults so that a file states only what
//! it changes; `deny_unknown_fields` everywhere so a typo is an error, never a silent default.

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

/// Where the normalisation sits in each block. The registry of norms: `NormKind::ALL`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    PostLn,
    PreLn,
    Powernorm,
}

impl NormKind {
    pub const ALL: [NormKind; 3] = [NormKind::PostLn, NormKind::PreLn, NormKind::Powernorm];

    pub fn name(self) -> &'static str {
        match self {
            NormKind::PostLn => "post-ln",
            NormKind::PreLn => "pre-ln",
            NormKind::Powernorm => "powernorm",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NormKind::PostLn => "LayerNorm after each residual add (original BERT)",
            NormKind::PreLn => "LayerNorm before each sublayer, final LayerNorm (Xiong et al. 2020)",
            NormKind::Powernorm => {
                "PowerNorm after each residual add: batch quadratic mean, running statistics, approximate backward (Shen et al. 2020)"
            }
        }
    }
}

/// `model.positions`: where position information enters the encoder.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// A learned embedding per position, added to the word embeddings (BERT).
    #[default]
    Learned,
    /// A fixed per-head linear penalty on query–key distance (ALiBi), no embeddings.
    Alibi,
}

impl Positions {
    fn is_learned(&self) -> bool {
        *self == Positions::Learned
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PowerNormConfig {
    /// Steps during which the batch statistic (not the running one) normalises the forward pass.
    pub warmup: u64,
    /// Momentum of the running quadratic mean used in the forward pass (paper: alpha_f).
    pub alpha_fwd: f32,
    /// Momentum of the running gradient statistic used in the backward pass (paper: alpha_b).
    pub alpha_bkw: f32,
    /// Channel groups of the per-token group scaling that precedes the batch statistic.
    pub groups: usize,
    pub eps: f32,
}

impl Default for PowerNormConfig {
    fn default() -> Self {
        Self {
            warmup: 100,
            alpha_fwd: 0.9,
            alpha_bkw: 0.9,
            groups: 1,
            eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A size preset (`config::preset`): fills the keys the file leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub dropout: f32,
    pub attention_dropout: f32,
    pub norm: NormKind,
    pub layer_norm_eps: f32,
    pub init_std: f32,
    pub powernorm: PowerNormConfig,
    /// The MLM decoder is the word-embedding matrix (BERT, HF's `tie_word_embeddings`), or a
    /// matrix of its own when false: more parameters, but the input embeddings are no longer
    /// pulled towards what the output layer needs (Chung et al. 2021, "Rethinking embedding
    /// coupling"). Left out of the resolved settings when tied, as before the key existed.
    #[serde(skip_serializing_if = "is_true")]
    pub tie_word_embeddings: bool,
    /// Biases in the attention and feed-forward projections of every block. Cramming drops
    /// them (fewer parameters and a little less work per step, at no loss it could measure);
    /// the norms, the pooler and the heads keep theirs. Left out of the resolved settings
    /// when true, as before the key existed.
    #[serde(skip_serializing_if = "is_true")]
    pub linear_bias: bool,
    /// How the encoder knows where a token is: BERT's learned position embeddings, or ALiBi
    /// (Press et al. 2022; MosaicBERT's choice for a fast BERT): no position embeddings, and
    /// each head's scores penalised in proportion to the distance between query and key, so
    /// attention is local from the first step instead of after the positions are learned.
    /// Left out of the resolved settings when learned, as before the key existed.
    #[serde(skip_serializing_if = "Positions::is_learned")]
    pub positions: Positions,
    /// Start from the encoder of another pretraining run — its directory or checkpoint file,
    /// relative to the experiment file — instead of a fresh initialisation: continued
    /// pretraining, or a second stage (MLM first, then a contrastive objective, as SimCSE
    /// starts from BERT). An objective's head the source run also trained is loaded too (as
    /// HF's `from_pretrained`), the others start fresh; the run's tokenizer must be the source
    /// run's. Read when the run starts; a resumed run continues from its own checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            preset: None,
            layers: 2,
            hidden: 128,
            heads: 4,
            ffn: 512,
            max_positions: 128,
            type_vocab: 2,
            dropout: 0.1,
            attention_dropout: 0.1,
            norm: NormKind::PostLn,
            layer_norm_eps: 1e-12,
            init_std: 0.02,
            powernorm: PowerNormConfig::default(),
            tie_word_embeddings: true,
            linear_bias: true,
            positions: Positions::Learned,
            init: None,
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

fn is_true(b: &bool) -> bool {
    *b
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
        }
    }
}

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
    /// Peak learning rate of `mode = "finetune"` runs; unset: 1e-4.
    pub lr: Option<f64>,
    /// Peak learning rate of `mode = "probe"` runs (a lone linear head on fixed features
    /// wants a larger one); unset: 1e-3.
    pub probe_lr: Option<f64>,
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
}

impl FinetuneSpec {
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
            lr: None,
            probe_lr: None,
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
