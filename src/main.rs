//! The `pretext` command line: `cli.rs` says what the flags are; here each mode is one short
//! function that turns its flags into a call of the library.

mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{BenchArgs, Cli, Command, FinetuneArgs, RunArgs, SweepArgs, TokenizerCommand};
use pretext::config::{Init, LoadedExperiment, Mode, NormKind};
use pretext::data::{corpus, Tokenizer};
use pretext::objectives::registry;
use pretext::{finetune, grid};
use std::path::{Path, PathBuf};

fn main() {
    // `pretext validate … | head` must end quietly when the pipe closes, as other Unix tools
    // do, not panic on a failed print: restore the default SIGPIPE action Rust ignores.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    pretext::alloc::tune_for_training();
    if let Err(e) = dispatch() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(&args),
        Command::Report { runs, out } => report(&runs, out),
        Command::Finetune(args) => finetune(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Bench(args) => bench(&args),
        Command::Validate { file } => validate(&file),
        Command::Gradnorms {
            file,
            batches,
            runs_dir,
            out,
        } => grid::layer_gradients(&file, &runs_dir, batches.into(), &out),
        Command::List => {
            list();
            Ok(())
        }
        Command::Tokenizer {
            command:
                TokenizerCommand::Train {
                    corpus,
                    vocab_size,
                    cased,
                    min_frequency,
                    out,
                },
        } => tokenizer_train(&corpus, vocab_size as usize, cased, min_frequency, &out),
    }
}

/// The command line as typed, each word quoted for a POSIX shell where it needs to be.
fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
            if plain {
                w
            } else {
                pretext::sweep::quote(&w)
            }
        })
        .collect();
    format!("pretext {}", words.join(" "))
}

fn run(a: &RunArgs) -> Result<()> {
    let opts = grid::Options {
        fresh: a.fresh,
        force: a.force,
        stop_at: a.stop_at,
        jobs: a.jobs.map_or(1, usize::from),
        runs_dir: a.runs_dir.clone(),
        reports_dir: a.reports_dir.clone(),
        quiet: a.quiet,
        only: a.only.clone(),
        no_report: a.no_report,
        command: command_line(),
    };
    grid::run(&a.file, &opts)
}

fn report(runs: &Path, out: Option<PathBuf>) -> Result<()> {
    let name = runs
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "experiment".into());
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&name));
    grid::write_report(runs, &out)
}

fn finetune(a: &FinetuneArgs) -> Result<()> {
    let request = finetune::single::Request {
        checkpoint: a.checkpoint.clone(),
        task: a.task.clone(),
        data: a.data.clone(),
        init: match a.init {
            cli::InitArg::Pretrained => Init::Pretrained,
            cli::InitArg::Scratch => Init::Scratch,
        },
        mode: match a.mode {
            cli::ModeArg::Finetune => Mode::Finetune,
            cli::ModeArg::Probe => Mode::Probe,
        },
        seed: a.seed,
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        max_train_examples: a.max_train_examples,
        tokenizer: a.tokenizer.clone(),
        out: a.out.clone(),
    };
    println!("{}", finetune::single::run(&request)?);
    Ok(())
}

fn sweep(a: &SweepArgs) -> Result<()> {
    if a.local {
        let opts = grid::Options {
            fresh: false,
            force: false,
            stop_at: None,
            jobs: a.jobs.map_or(1, usize::from),
            runs_dir: a.runs_dir.clone(),
            reports_dir: a.reports_dir.clone(),
            quiet: false,
            only: vec![],
            no_report: false,
            command: command_line(),
        };
        return grid::run(&a.file, &opts);
    }
    let exp = LoadedExperiment::load(&a.file)?;
    let mut res = exp.base.slurm.clone().unwrap_or_default();
    if let Some(v) = &a.partition {
        res.partition = Some(v.clone());
    }
    if let Some(v) = &a.time {
        res.time = v.clone();
    }
    if let Some(v) = a.cpus_per_task {
        res.cpus_per_task = v;
    }
    if let Some(v) = &a.mem {
        res.mem = v.clone();
    }
    if let Some(v) = a.gpus {
        res.gpus = v;
    }
    if let Some(v) = a.max_parallel {
        res.max_parallel = v;
    }
    pretext::sweep::write_and_submit(&pretext::sweep::Request {
        file: a.file.clone(),
        resources: res,
        runs_dir: a.runs_dir.clone(),
        reports_dir: a.reports_dir.clone(),
        out: a.out.clone(),
        submit: a.submit,
    })
}

fn bench(a: &BenchArgs) -> Result<()> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build_global()
            .ok();
    }
    let shape = match a.shape {
        cli::ShapeArg::Reference => pretext::bench::REFERENCE,
        cli::ShapeArg::Large => pretext::bench::LARGE,
    };
    let dir = std::env::temp_dir().join(format!("pretext-bench-{}", std::process::id()));
    let m = pretext::bench::run(&shape, a.warmup, a.steps, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let m = m?;
    if a.json {
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    println!(
        "{shape:?}\n{} steps in {:.1} s: {:.0} tokens/s, {:.1} GFLOP/s, peak RSS {:.0} MiB, loss {:.3} → {:.3}",
        m.steps,
        m.seconds,
        m.tokens_per_second,
        m.gflops_per_second,
        m.peak_rss_mib,
        m.losses.first().copied().unwrap_or(f64::NAN),
        m.losses.last().copied().unwrap_or(f64::NAN)
    );
    println!("device: {} (matrix kernels: {})", m.device, m.simd);
    if let Some(peak) = a.peak_tflops {
        println!(
            "model-FLOP utilisation: {:.1} % of {peak} TFLOP/s",
            100.0 * m.gflops_per_second / (peak * 1e3)
        );
    }
    Ok(())
}

fn validate(file: &Path) -> Result<()> {
    let exp = LoadedExperiment::load(file)?;
    println!(
        "{}: experiment `{}`, {} run(s)",
        file.display(),
        exp.base.name,
        exp.runs.len()
    );
    // Patterns are expanded now, so one that matches nothing is named before any run starts.
    let mut seen: Vec<&Vec<String>> = Vec::new();
    for r in &exp.runs {
        let corpus = &r.config.data.corpus;
        if seen.contains(&corpus) {
            continue;
        }
        seen.push(corpus);
        let files = pretext::data::sources::expand(corpus, &grid::base_dir(file))
            .with_context(|| format!("{}: key `data.corpus`", file.display()))?;
        println!(
            "  data.corpus: {} entr{} → {} file(s), format {:?}",
            corpus.len(),
            if corpus.len() == 1 { "y" } else { "ies" },
            files.len(),
            r.config.data.format
        );
    }
    for r in &exp.runs {
        let c = &r.config;
        let objs: Vec<String> = c
            .objectives
            .iter()
            .map(|o| format!("{}×{}", o.name, o.weight))
            .collect();
        let est = pretext::config::memory::estimate(c);
        println!(
            "  {:<32} norm={} L={} H={} A={} seed={} steps={} objectives=[{}] params={:.2}M memory≈{}",
            r.variant,
            c.model.norm.name(),
            c.model.layers,
            c.model.hidden,
            c.model.heads,
            c.training.seed,
            c.training.steps,
            objs.join(", "),
            pretext::config::memory::parameters(c) / 1e6,
            pretext::config::memory::gib(est.total)
        );
    }
    grid::refuse_what_cannot_fit(file, &exp)
}

fn list() {
    println!("objectives:");
    for e in registry::ENTRIES {
        println!("  {:<12} {}", e.name, e.summary);
    }
    println!("norms (model.norm):");
    for n in NormKind::ALL {
        println!("  {:<12} {}", n.name(), n.describe());
    }
    println!("downstream tasks ([[finetune]] task):");
    for t in finetune::task::all() {
        println!("  {:<12} {}", t.name, t.summary);
    }
}

/// `pretext tokenizer train`: refuses an `--out` that is one of the corpus files (it would be
/// replaced by JSON) or an existing file that is not a tokenizer.
fn tokenizer_train(
    sources: &[String],
    vocab_size: usize,
    cased: bool,
    min_frequency: u64,
    out: &Path,
) -> Result<()> {
    let sources = pretext::data::sources::expand(sources, Path::new("."))?;
    let inputs: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    pretext::rundir::refuse_overwriting_input(out, &inputs).map_err(anyhow::Error::msg)?;
    if out.exists() && Tokenizer::load(out, !cased).is_err() {
        anyhow::bail!(
            "{}: exists and is not a tokenizer file; refusing to replace it (remove it, or \
             choose another --out)",
            out.display()
        );
    }
    let mut sentences = Vec::new();
    for s in &sources {
        let docs = corpus::read_source(s, Path::new("."), Default::default(), 1)?;
        sentences.extend(docs.into_iter().flat_map(|d| d.sentences));
    }
    let tok = Tokenizer::train(
        sentences.iter().map(String::as_str),
        vocab_size,
        !cased,
        min_frequency,
    )?;
    tok.save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "trained WordPiece on {} sentences: {} tokens → {}",
        sentences.len(),
        tok.vocab_size(),
        out.display()
    );
    Ok(())
}
