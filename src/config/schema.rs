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
    /// Guess from the content: WikiText if ` = Title = ` lines are present, else plain text.
    #[default]
    Auto,
    /// One sentence or paragraph a line; a blank line separates documents.
    Text,
    /// WikiText: ` = Title = ` lines start documents, ` = = Section = = ` lines are dropped.
    Wikitext,
    /// A Project Gutenberg book: framing stripped, wrapped lines joined into paragraphs,
    /// upper-case title lines start a new document (tale or chapter).
    Gutenberg,
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
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            corpus: vec!["embedded".into()],
            format: CorpusFormat::Auto,
            heldout_fraction: 0.1,
            min_sentences: 2,
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
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
    pub weight_decay: f64,
    pub warmup_steps: u64,
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value; 0 disables clipping.
    pub clip: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 5e-4,
            betas: [0.9, 0.999],
            eps: 1e-6,
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
    pub steps: u64,
    pub batch_size: usize,
    pub seq_len: usize,
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
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 300,
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
        }
    }
}
