//! The `pretext` command line: one subcommand per verb in DESIGN.md that exists so far.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pretext::config::{LoadedExperiment, NormKind};
use pretext::data::{corpus, Tokenizer};
use pretext::objectives::registry;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "pretext", version, about = "Self-supervised language-model pretraining experiments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a BERT-style WordPiece vocabulary and save it as an HF tokenizer.json.
    Train {
        /// Corpus files (plain text, WikiText or Gutenberg; the word `embedded` for the shipped corpus).
        #[arg(long, required = true, num_args = 1..)]
        corpus: Vec<String>,
        #[arg(long, default_value_t = 8000)]
        vocab_size: usize,
        /// Keep case (the default lower-cases, like bert-base-uncased).
        #[arg(long)]
        cased: bool,
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Validate { file } => {
            let exp = LoadedExperiment::load(&file)?;
            println!("{}: experiment `{}`, {} run(s)", file.display(), exp.base.name, exp.runs.len());
            for r in &exp.runs {
                let c = &r.config;
                let objs: Vec<String> = c.objectives.iter().map(|o| format!("{}×{}", o.name, o.weight)).collect();
                println!(
                    "  {:<32} norm={} L={} H={} A={} seed={} steps={} objectives=[{}]",
                    r.variant,
                    c.model.norm.name(),
                    c.model.layers,
                    c.model.hidden,
                    c.model.heads,
                    c.training.seed,
                    c.training.steps,
                    objs.join(", ")
                );
            }
        }
        Command::List => {
            println!("objectives:");
            for e in registry::ENTRIES {
                println!("  {:<12} {}", e.name, e.summary);
            }
            println!("norms (model.norm):");
            for n in NormKind::ALL {
                println!("  {:<12} {}", n.name(), n.describe());
            }
        }
        Command::Tokenizer { command: TokenizerCommand::Train { corpus: sources, vocab_size, cased, min_frequency, out } } => {
            let mut sentences = Vec::new();
            for s in &sources {
                let docs = corpus::read_source(s, std::path::Path::new("."), Default::default(), 1)?;
                sentences.extend(docs.into_iter().flat_map(|d| d.sentences));
            }
            let tok = Tokenizer::train(sentences.iter().map(String::as_str), vocab_size, !cased, min_frequency)?;
            tok.save(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("trained WordPiece on {} sentences: {} tokens → {}", sentences.len(), tok.vocab_size(), out.display());
        }
    }
    Ok(())
}
