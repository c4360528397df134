//! The `pretext` command line: `cli.rs` says what the flags are; here each mode is one short
//! function that turns its flags into a call of the library.

mod cli;

use anyhow::Result;
use clap::Parser;
use cli::{BenchArgs, Cli, Command, EvalArgs, FinetuneArgs, RunArgs, SweepArgs, TokenizerCommand};
use pretext::config::{Init, LoadedExperiment, Mode};
use pretext::{finetune, grid};

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
        Command::Report { runs, out } => pretext::report::folder::report(&runs, out),
        Command::Finetune(args) => finetune(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Bench(args) => bench(&args),
        Command::Batches(a) => {
            let (only, steps) = (a.only.as_deref(), a.steps as usize);
            pretext::batches::write(&a.file, only, steps, &a.runs_dir, &a.out)
        }
        Command::Fill(a) => {
            let tok = a.tokenizer.as_deref();
            pretext::predict::fill::command(&a.target, &a.text, a.top_k as usize, tok, a.json)
        }
        Command::Eval(args) => eval(&args),
        Command::Bias(a) => {
            pretext::predict::bias::command(&a.target, a.tokenizer.as_deref(), &a.data, a.json)
        }
        Command::Export(a) => {
            println!(
                "{}",
                pretext::hf::export::to_hf(&a.target, a.tokenizer.as_deref(), &a.hf)?
            );
            Ok(())
        }
        Command::Validate { file } => pretext::inspect::validate(&file),
        Command::Gradnorms {
            file,
            batches,
            runs_dir,
            out,
        } => pretext::gradnorms::layer_gradients(&file, &runs_dir, batches.into(), &out),
        Command::List => {
            pretext::inspect::list();
            Ok(())
        }
        Command::Tokenizer {
            command: TokenizerCommand::Train(t),
        } => {
            let size = t.vocab_size as usize;
            pretext::data::vocab::train_to_file(&t.corpus, size, t.cased, t.min_frequency, &t.out)
        }
    }
}

/// The command line as typed, quoted where a word needs it.
fn command_line() -> String {
    pretext::sweep::shell_line("pretext", std::env::args().skip(1))
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
        // clap bounds each to 1e9 at most: a usize on every target.
        epochs: a.epochs.map(|v| v as usize),
        lr: a.lr,
        batch_size: a.batch_size.map(|v| v as usize),
        max_seq_len: a.max_seq_len.map(|v| v as usize),
        max_train_examples: a.max_train_examples.map(|v| v as usize),
        precision: precision(a.precision),
        tokenizer: a.tokenizer.clone(),
        out: a.out.clone(),
        predict: a.predict.clone(),
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
    let res = a.resources(exp.base.slurm.clone().unwrap_or_default());
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
    let mut shape = match a.shape {
        cli::ShapeArg::Small => pretext::bench::SMALL,
        cli::ShapeArg::Reference => pretext::bench::REFERENCE,
        cli::ShapeArg::Large => pretext::bench::LARGE,
    };
    shape.batch = a.batch.map_or(shape.batch, usize::from);
    shape.dropout = a.dropout.unwrap_or(shape.dropout);
    shape.precision = precision(a.precision);
    shape.dense_last_layer = a.dense_last_layer;
    let opts = pretext::bench::Options {
        threads: a.threads.map(usize::from),
        warmup: a.warmup,
        steps: a.steps,
        json: a.json,
        peak_tflops: a.peak_tflops,
        gemm: a.gemm,
    };
    pretext::bench::command(&shape, &opts)
}

fn eval(a: &EvalArgs) -> Result<()> {
    if let Some(file) = &a.heldout {
        return pretext::train::rescore::command(file, &a.target, a.json);
    }
    let opts = pretext::predict::eval::Options {
        corpus: a.corpus.clone(),
        format: a.format,
        seq_len: a.seq_len.map(|s| s as usize),
        batches: a.batches as usize,
        pppl_sequences: a.pppl_sequences as usize,
        seed: a.seed,
    };
    pretext::predict::eval::command(&a.target, a.tokenizer.as_deref(), &opts, a.json)
}

fn precision(p: cli::PrecisionArg) -> pretext::config::Precision {
    match p {
        cli::PrecisionArg::Fp32 => pretext::config::Precision::Fp32,
        cli::PrecisionArg::Bf16 => pretext::config::Precision::Bf16,
    }
}
