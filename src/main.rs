//! The `pretext` command line: one subcommand per verb in DESIGN.md that exists so far.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pretext::config::{LoadedExperiment, NormKind};
use pretext::data::{self as data, corpus, Tokenizer};
use pretext::objectives::registry;
use pretext::train;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pretext",
    version,
    about = "Self-supervised language-model pretraining experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train every run of an experiment file's grid into runs/<experiment>/<variant>/.
    Run(RunArgs),
    /// Draw charts and write a Markdown report for runs/<experiment>.
    Report {
        runs: PathBuf,
        /// Where the report goes (default: reports/<experiment>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
struct RunArgs {
    file: PathBuf,
    /// Ignore the checkpoints of unfinished runs and start them over (by default they
    /// continue from their latest checkpoint, bit-identically).
    #[arg(long)]
    fresh: bool,
    /// Retrain every run, finished ones included.
    #[arg(long)]
    force: bool,
    /// Stop every run after this step, checkpointed; the same command without it continues.
    #[arg(long)]
    stop_at: Option<u64>,
    /// Runs trained at the same time (each uses `training.threads` threads).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Where the report goes: <reports-dir>/<experiment>/.
    #[arg(long, default_value = "reports")]
    reports_dir: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
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
        Command::Run(args) => run_experiment(&args)?,
        Command::Report { runs, out } => {
            let name = runs
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "experiment".into());
            let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&name));
            report(&runs, &out)?;
        }
        Command::Validate { file } => {
            let exp = LoadedExperiment::load(&file)?;
            println!(
                "{}: experiment `{}`, {} run(s)",
                file.display(),
                exp.base.name,
                exp.runs.len()
            );
            for r in &exp.runs {
                let c = &r.config;
                let objs: Vec<String> = c
                    .objectives
                    .iter()
                    .map(|o| format!("{}×{}", o.name, o.weight))
                    .collect();
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
        Command::Tokenizer {
            command:
                TokenizerCommand::Train {
                    corpus: sources,
                    vocab_size,
                    cased,
                    min_frequency,
                    out,
                },
        } => {
            let mut sentences = Vec::new();
            for s in &sources {
                let docs =
                    corpus::read_source(s, std::path::Path::new("."), Default::default(), 1)?;
                sentences.extend(docs.into_iter().flat_map(|d| d.sentences));
            }
            let tok = Tokenizer::train(
                sentences.iter().map(String::as_str),
                vocab_size,
                !cased,
                min_frequency,
            )?;
            tok.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "trained WordPiece on {} sentences: {} tokens → {}",
                sentences.len(),
                tok.vocab_size(),
                out.display()
            );
        }
    }
    Ok(())
}

fn run_experiment(args: &RunArgs) -> Result<()> {
    let RunArgs {
        file,
        reports_dir,
        fresh,
        force,
        runs_dir,
        quiet,
        stop_at,
        jobs,
    } = args;
    let (fresh, force, quiet, stop_at) = (*fresh, *force, *quiet, *stop_at);
    let exp = LoadedExperiment::load(file)?;
    let base_dir = file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let exp_dir = runs_dir.join(&exp.base.name);
    std::fs::create_dir_all(&exp_dir)
        .with_context(|| format!("cannot create the run directory {}", exp_dir.display()))?;
    let jobs = jobs.unwrap_or(1).max(1);
    // dfdx's matmuls run on the global rayon pool, which every job shares: size it for all.
    let threads = exp.base.training.threads;
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads * jobs)
            .build_global()
            .ok();
    }
    let tokenizer_file = exp_dir.join("tokenizer.json");
    let command = format!(
        "pretext {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    std::fs::write(exp_dir.join("command.txt"), &command)
        .with_context(|| format!("writing into {}", exp_dir.display()))?;
    println!(
        "{}: {} run(s) into {}, {jobs} at a time",
        file.display(),
        exp.runs.len(),
        exp_dir.display()
    );

    let todo: Vec<&pretext::config::RunSpec> = exp
        .runs
        .iter()
        .filter(|spec| {
            let finished = exp_dir.join(&spec.variant).join("summary.json").exists();
            if finished && !force {
                println!(
                    "  {:<32} finished earlier (use --force to retrain)",
                    spec.variant
                );
            }
            !finished || force
        })
        .collect();
    // The tokenizer is trained once, before any run starts, so parallel runs share it.
    if let Some(first) = todo.first() {
        let c = &first.config;
        data::prepare(
            &c.data,
            &c.tokenizer,
            c.training.seed,
            &base_dir,
            Some(&tokenizer_file),
        )?;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(spec) = todo.get(i) else { break };
                let dir = exp_dir.join(&spec.variant);
                let result = (|| -> Result<()> {
                    let cfg = &spec.config;
                    let prepared = data::prepare(
                        &cfg.data,
                        &cfg.tokenizer,
                        cfg.training.seed,
                        &base_dir,
                        Some(&tokenizer_file),
                    )?;
                    // Unfinished runs continue from their checkpoint unless told otherwise.
                    let opts = train::Options {
                        resume: !fresh && !force,
                        progress: !quiet && jobs == 1,
                        stop_at,
                    };
                    let s = train::run(cfg, &prepared, &dir, &opts)?;
                    print_summary(&spec.variant, &s);
                    if s.steps < cfg.training.steps {
                        return Ok(()); // stopped early on request: not finished
                    }
                    let summary = serde_json::json!({
                        "steps": s.steps,
                        "resumed_from": s.resumed_from,
                        "tokens_per_second": s.tokens_per_second,
                        "first_train": s.first.scalars(),
                        "last_train": s.last_train.scalars(),
                        "last_eval": s.last_eval.as_ref().map(|e| e.scalars()),
                    });
                    let done = dir.join("summary.json");
                    std::fs::write(&done, serde_json::to_string_pretty(&summary)?)
                        .with_context(|| format!("writing {}", done.display()))?;
                    Ok(())
                })();
                if let Err(e) = result {
                    eprintln!("  {:<32} FAILED: {e:#}", spec.variant);
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(spec.variant.clone());
                }
            });
        }
    });
    println!("TensorBoard: tensorboard --logdir {}", exp_dir.display());
    report(&exp_dir, &reports_dir.join(&exp.base.name))?;
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    if !failures.is_empty() {
        anyhow::bail!(
            "{} run(s) failed: {}; re-running the command continues them",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

fn print_summary(variant: &str, s: &train::Summary) {
    let fmt = |m: &train::Metrics| {
        m.per_objective
            .iter()
            .map(|(n, l, ..)| format!("{n} {l:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let eval = s
        .last_eval
        .as_ref()
        .map(|e| {
            e.scalars()
                .iter()
                .map(|(n, v)| format!("{n} {v:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "none".into());
    let resumed = s
        .resumed_from
        .map(|r| format!(" (resumed at step {r})"))
        .unwrap_or_default();
    println!(
        "  {variant:<32} step {}{resumed}: train loss [{}] → [{}]; held-out [{eval}]; {:.0} tokens/s",
        s.steps,
        fmt(&s.first),
        fmt(&s.last_train),
        s.tokens_per_second
    );
}

fn report(exp_dir: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let command = std::fs::read_to_string(exp_dir.join("command.txt"))
        .unwrap_or_else(|_| "(the command was not recorded)".into());
    let w = pretext::report::write(exp_dir, out, command.trim())?;
    println!(
        "report: {} ({} charts, PNG and SVG)",
        w.markdown.display(),
        w.charts.len()
    );
    Ok(())
}
