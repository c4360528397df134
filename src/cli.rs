//! The command line's shape: clap types only. `main.rs` turns each into a call of the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pretext",
    version,
    about = "Self-supervised language-model pretraining experiments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train every run of an experiment file's grid into runs/<experiment>/<variant>/.
    Run(RunArgs),
    /// Time the training loop on issue 7's reference configuration (or the large one).
    Bench(BenchArgs),
    /// Run a grid here (--local) or on a Slurm cluster as a job array (--slurm).
    Sweep(SweepArgs),
    /// Draw charts and write a Markdown report for runs/<experiment>.
    Report {
        runs: PathBuf,
        /// Where the report goes (default: reports/<experiment>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train one downstream task on a pretraining run's checkpoint (or from scratch).
    Finetune(FinetuneArgs),
    /// Gradient norm of each encoder layer at initialisation, per setting of the grid.
    Gradnorms {
        file: PathBuf,
        /// Training batches to average over.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1000))]
        batches: u16,
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Where the chart goes.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Write a run's training token ids (unmasked) and the shared held-out MLM batches to a
    /// safetensors file, to train another implementation on the same data
    /// (benches/hf_parity.py).
    Batches(BatchesArgs),
    /// Fill in the blanks: the likeliest tokens for every [MASK] of a text, by a pretraining
    /// run's MLM head.
    Fill(FillArgs),
    /// MLM loss, accuracy and pseudo-perplexity of a pretraining checkpoint on any text (or a
    /// finished run scored again on its experiment's held-out set: --heldout).
    Eval(EvalArgs),
    /// The CrowS-Pairs bias probe of a pretraining run's MLM: how often it prefers the more
    /// stereotyping sentence of a minimal pair (50 % = no preference), overall and per type.
    Bias(BiasArgs),
    /// Write a post-LN pretraining run as an HF transformers BERT folder (BertForPreTraining,
    /// BertForMaskedLM).
    Export(ExportArgs),
    /// Check an experiment file and print the runs its ablation grid expands into.
    Validate { file: PathBuf },
    /// Print the registered objectives and normalisation placements.
    List,
    /// Tokenizer tools.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "reference")]
    pub shape: ShapeArg,
    /// Untimed steps first (allocation, caches).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub warmup: u64,
    /// Timed steps (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub steps: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Sequences per step instead of the shape's 32 (a GPU needs larger batches to fill).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch: Option<u16>,
    /// Hidden and attention dropout instead of 0.1.
    #[arg(long, value_parser = dropout_rate)]
    pub dropout: Option<f32>,
    /// One JSON object instead of text (for benches/compare.sh).
    #[arg(long)]
    pub json: bool,
    /// The device's peak dense f32 (or TF32) TFLOP/s, to print model-FLOP utilisation.
    #[arg(long, value_parser = positive_finite)]
    pub peak_tflops: Option<f64>,
    /// The matrix products' arithmetic (`training.precision`): f32, or bf16 operands with f32
    /// sums (falls back to f32, saying so, on a CPU without AVX512-BF16).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// Time the step's matrix products alone, f32 against bf16, instead of training.
    #[arg(long)]
    pub gemm: bool,
    /// Compute the last block at every token (`training.dense_last_layer`), not only at the
    /// masked and [CLS] rows the objectives read: equal work with code that does not prune it.
    #[arg(long)]
    pub dense_last_layer: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
}

#[derive(clap::Args)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Ignore the checkpoints of unfinished runs and start them over (by default they
    /// continue from their latest checkpoint, bit-identically).
    #[arg(long)]
    pub fresh: bool,
    /// Retrain every run, finished ones included.
    #[arg(long)]
    pub force: bool,
    /// Stop every run after this step, checkpointed; the same command without it continues.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_at: Option<u64>,
    /// Runs trained at the same time (each uses `training.threads` threads).
    #[arg(long, short, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Where the report goes: <reports-dir>/<experiment>/.
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Train only this variant of the grid (repeatable); what a Slurm array task does.
    #[arg(long, value_name = "VARIANT")]
    pub only: Vec<String>,
    /// Do not write the report at the end (a cluster task; run `pretext report` after).
    #[arg(long)]
    pub no_report: bool,
}

#[derive(clap::Args)]
pub struct SweepArgs {
    pub file: PathBuf,
    /// Write a Slurm job-array script, one task per run.
    #[arg(long, required_unless_present = "local", conflicts_with = "local")]
    pub slurm: bool,
    /// Run the grid on this machine (the same as `pretext run`).
    #[arg(long)]
    pub local: bool,
    /// --local: runs at the same time.
    #[arg(long, short, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// --slurm resources; each overrides the file's [slurm] section.
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub gpus: Option<usize>,
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// The script's path (default: <runs-dir>/<experiment>/slurm/sweep.sbatch).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Submit the script with sbatch, and a report job that runs after it.
    #[arg(long)]
    pub submit: bool,
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
}

impl SweepArgs {
    /// The file's `[slurm]` resources with each flag given on the command line put over them.
    pub fn resources(&self, mut res: pretext::config::SlurmConfig) -> pretext::config::SlurmConfig {
        if let Some(v) = &self.partition {
            res.partition = Some(v.clone());
        }
        if let Some(v) = &self.time {
            res.time = v.clone();
        }
        if let Some(v) = self.cpus_per_task {
            res.cpus_per_task = v;
        }
        if let Some(v) = &self.mem {
            res.mem = v.clone();
        }
        if let Some(v) = self.gpus {
            res.gpus = v;
        }
        if let Some(v) = self.max_parallel {
            res.max_parallel = v;
        }
        res
    }
}

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// A pretraining run directory, or its checkpoint file (checkpoints/latest.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A task from `pretext list`.
    #[arg(long)]
    pub task: String,
    /// The task's data: a GLUE task folder, or a SQuAD json file or folder.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "pretrained")]
    pub init: InitArg,
    #[arg(long, value_enum, default_value = "finetune")]
    pub mode: ModeArg,
    /// (At most 2^63 − 1: an experiment file's integers are TOML's.)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub seed: u64,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub epochs: Option<u64>,
    /// Peak learning rate (default: 1e-4 for finetune, 1e-3 for probe).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_seq_len: Option<u64>,
    /// Train on at most this many examples (0: all).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub max_train_examples: Option<u64>,
    /// The matrix products' arithmetic (as `training.precision`).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// The tokenizer (default: the experiment's tokenizer.json beside the run directory).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Where the run goes (default: <run>/finetune/<task>/<init=…,mode=…,seed=…>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the dev predictions here: GLUE's `index<TAB>prediction` TSV, or SQuAD's
    /// `{id: answer}` JSON that the official evaluation script reads. (Every run also keeps
    /// them in its folder as predictions.tsv / predictions.json.)
    #[arg(long, value_name = "FILE")]
    pub predict: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BatchesArgs {
    pub file: PathBuf,
    /// Training batches to write, from the first.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// The grid's variant (default: its first run).
    #[arg(long, value_name = "VARIANT")]
    pub only: Option<String>,
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct FillArgs {
    /// A pretraining run directory, or its checkpoint file.
    pub target: PathBuf,
    /// The text, with [MASK] where a token should be predicted.
    pub text: String,
    /// Candidates per [MASK].
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub top_k: u32,
    /// The tokenizer (default: the experiment's tokenizer.json beside the run directory).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A pretraining run directory, or its checkpoint file.
    pub target: PathBuf,
    /// The folder to write (new, empty, or an earlier export).
    #[arg(long)]
    pub hf: PathBuf,
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BiasArgs {
    /// A pretraining run directory, or its checkpoint file.
    pub target: PathBuf,
    /// crows_pairs_anonymized.csv (e.g. ../shared/data/bias/crows-pairs/).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A pretraining run directory, or its checkpoint file.
    pub target: PathBuf,
    /// Text files or glob patterns (any layout `data.corpus` reads; gzip read transparently).
    #[arg(long, required_unless_present = "heldout", conflicts_with = "heldout", num_args = 1..)]
    pub corpus: Vec<String>,
    /// Instead of a corpus: score the finished run TARGET again on the shared held-out set of
    /// FILE, the experiment it is a variant of — every objective's held-out metrics, the pair
    /// probes and the pair heads' transfer, by this build's evaluation code.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["format", "seq_len", "batches", "pppl_sequences", "seed", "tokenizer"])]
    pub heldout: Option<PathBuf>,
    /// auto, text, wikitext, gutenberg, wikiextractor or jsonl.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: pretext::config::CorpusFormat,
    /// Segment length (default: the checkpoint's training.seq_len).
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..=1_000_000))]
    pub seq_len: Option<u32>,
    /// At most this many batches of 32 masked segments (the corpus once at most).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub batches: u32,
    /// Segments scored by pseudo-perplexity (each costs one forward pass per token; 0 skips).
    #[arg(long, default_value_t = 8)]
    pub pppl_sequences: u32,
    /// The masking seed: the same seed gives the same masked positions.
    #[arg(long, default_value_t = pretext::train::evaluation::EVAL_SEED)]
    pub seed: u64,
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_format(s: &str) -> Result<pretext::config::CorpusFormat, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
        format!("`{s}`: expected auto, text, wikitext, gutenberg, wikiextractor or jsonl")
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ShapeArg {
    /// L=4, H=128, A=4, FF=512, vocab 8192, seq 128, batch 32.
    Small,
    /// L=4, H=256, A=4, FF=1024, vocab 8192, seq 128, batch 32.
    Reference,
    /// L=6, H=512, A=8, FF=2048, vocab 8192, seq 128, batch 32.
    Large,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum InitArg {
    Pretrained,
    Scratch,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Finetune,
    Probe,
}

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a BERT-style WordPiece vocabulary and save it as an HF tokenizer.json.
    Train(TokenizerTrainArgs),
}

#[derive(clap::Args)]
pub struct TokenizerTrainArgs {
    /// Corpus files or glob patterns (plain text, WikiText, Gutenberg, WikiExtractor, JSON
    /// lines; gzip read transparently; the word `embedded` for the shipped corpus).
    #[arg(long, required = true, num_args = 1..)]
    pub corpus: Vec<String>,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u32).range(6..=1_000_000))]
    pub vocab_size: u32,
    /// Keep case (the default lower-cases, like bert-base-uncased).
    #[arg(long)]
    pub cased: bool,
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    #[arg(long)]
    pub out: PathBuf,
}

/// A finite number above 0.
fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// A dropout rate in [0, 1).
fn dropout_rate(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a rate in [0, 1)")),
    }
}
