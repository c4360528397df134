//! The `pretext` command line: one subcommand per verb in DESIGN.md that exists so far.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pretext::config::{LoadedExperiment, NormKind};
use pretext::data::{self as data, corpus, Tokenizer};
use pretext::finetune;
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
    /// Time the training loop on issue 7's reference configuration (or the large one).
    Bench {
        #[arg(long, value_enum, default_value = "reference")]
        shape: ShapeArg,
        /// Untimed steps first (allocation, caches).
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        #[arg(long, default_value_t = 10)]
        steps: u64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// One JSON object instead of text (for benches/compare.sh).
        #[arg(long)]
        json: bool,
        /// The device's peak dense f32 (or TF32) TFLOP/s, to print model-FLOP utilisation.
        #[arg(long)]
        peak_tflops: Option<f64>,
    },
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
    /// Train only this variant of the grid (repeatable); what a Slurm array task does.
    #[arg(long, value_name = "VARIANT")]
    only: Vec<String>,
    /// Do not write the report at the end (a cluster task; run `pretext report` after).
    #[arg(long)]
    no_report: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    file: PathBuf,
    /// Write a Slurm job-array script, one task per run.
    #[arg(long, required_unless_present = "local", conflicts_with = "local")]
    slurm: bool,
    /// Run the grid on this machine (the same as `pretext run`).
    #[arg(long)]
    local: bool,
    /// --local: runs at the same time.
    #[arg(long, short)]
    jobs: Option<usize>,
    /// --slurm resources; each overrides the file's [slurm] section.
    #[arg(long)]
    partition: Option<String>,
    #[arg(long)]
    time: Option<String>,
    #[arg(long)]
    cpus_per_task: Option<usize>,
    #[arg(long)]
    mem: Option<String>,
    #[arg(long)]
    gpus: Option<usize>,
    #[arg(long)]
    max_parallel: Option<usize>,
    /// The script's path (default: <runs-dir>/<experiment>/slurm/sweep.sbatch).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Submit the script with sbatch, and a report job that runs after it.
    #[arg(long)]
    submit: bool,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    #[arg(long, default_value = "reports")]
    reports_dir: PathBuf,
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// A pretraining run directory, or its checkpoint file (checkpoints/latest.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// A task from `pretext list`.
    #[arg(long)]
    task: String,
    /// The task's data: a GLUE task folder, or a SQuAD json file or folder.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "pretrained")]
    init: InitArg,
    #[arg(long, value_enum, default_value = "finetune")]
    mode: ModeArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate (default: 1e-4 for finetune, 1e-3 for probe).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Train on at most this many examples (0: all).
    #[arg(long)]
    max_train_examples: Option<usize>,
    /// The tokenizer (default: the experiment's tokenizer.json beside the run directory).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Where the run goes (default: <run>/finetune/<task>/<init=…,mode=…,seed=…>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShapeArg {
    /// L=4, H=256, A=4, FF=1024, vocab 8192, seq 128, batch 32.
    Reference,
    /// L=6, H=512, A=8, FF=2048, vocab 8192, seq 128, batch 32.
    Large,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InitArg {
    Pretrained,
    Scratch,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Finetune,
    Probe,
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
    pretext::alloc::tune_for_training();
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
        Command::Finetune(args) => finetune_one(&args)?,
        Command::Sweep(args) => sweep(&args)?,
        Command::Bench {
            shape,
            warmup,
            steps,
            threads,
            json,
            peak_tflops,
        } => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global()
                    .ok();
            }
            let shape = match shape {
                ShapeArg::Reference => pretext::bench::REFERENCE,
                ShapeArg::Large => pretext::bench::LARGE,
            };
            let dir = std::env::temp_dir().join(format!("pretext-bench-{}", std::process::id()));
            let m = pretext::bench::run(&shape, warmup, steps, &dir)?;
            let _ = std::fs::remove_dir_all(&dir);
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
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
                if let Some(peak) = peak_tflops {
                    println!(
                        "model-FLOP utilisation: {:.1} % of {peak} TFLOP/s",
                        100.0 * m.gflops_per_second / (peak * 1e3)
                    );
                }
            }
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
            println!("downstream tasks ([[finetune]] task):");
            for t in finetune::task::all() {
                println!("  {:<12} {}", t.name, t.summary);
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
        only,
        no_report,
    } = args;
    let (fresh, force, quiet, stop_at) = (*fresh, *force, *quiet, *stop_at);
    let mut exp = LoadedExperiment::load(file)?;
    if !only.is_empty() {
        if let Some(unknown) = only
            .iter()
            .find(|v| !exp.runs.iter().any(|r| r.variant == **v))
        {
            let known: Vec<&str> = exp.runs.iter().map(|r| r.variant.as_str()).collect();
            anyhow::bail!(
                "{}: no variant `{unknown}` in the grid; it has: {}",
                file.display(),
                known.join(", ")
            );
        }
        exp.runs.retain(|r| only.contains(&r.variant));
    }
    let base_dir = file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    // Downstream data is read after pretraining, possibly hours later: check it is there now.
    for spec in &exp.runs {
        for (i, f) in spec.config.finetune.iter().enumerate() {
            let data = base_dir.join(&f.data);
            if !data.exists() {
                anyhow::bail!(
                    "{}: key `finetune.{i}.data`: {} does not exist",
                    file.display(),
                    data.display()
                );
            }
        }
    }
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
        train_tokenizer_once(first, &base_dir, &exp_dir)?;
    }
    let failed = parallel(jobs, &todo, |spec| {
        let dir = exp_dir.join(&spec.variant);
        let cfg = &spec.config;
        let prepared = data::prepare(
            &cfg.data,
            &cfg.tokenizer,
            cfg.training.seed,
            &base_dir,
            Some(&exp_dir),
        )?;
        // Unfinished runs continue from their checkpoint unless told otherwise.
        let opts = train::Options {
            resume: !fresh && !force,
            progress: !quiet && jobs == 1,
            stop_at,
        };
        let s = train::run(cfg, &prepared, &dir, &opts)
            .with_context(|| format!("run {}", spec.variant))?;
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
    });
    let mut failures: Vec<String> = failed.iter().map(|&i| todo[i].variant.clone()).collect();
    failures.extend(run_downstream(&exp, &exp_dir, &base_dir, jobs, force)?);
    println!("TensorBoard: tensorboard --logdir {}", exp_dir.display());
    if !no_report {
        report(&exp_dir, &reports_dir.join(&exp.base.name))?;
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "{} run(s) failed: {}; re-running the command continues them",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

/// Runs every `[[finetune]]` entry on every finished pretraining run; returns the failures.
fn run_downstream(
    exp: &LoadedExperiment,
    exp_dir: &std::path::Path,
    base_dir: &std::path::Path,
    jobs: usize,
    force: bool,
) -> Result<Vec<String>> {
    let mut planned = Vec::new();
    let mut failures = Vec::new();
    for spec in &exp.runs {
        let cfg = &spec.config;
        let run_dir = exp_dir.join(&spec.variant);
        if cfg.finetune.is_empty() || !run_dir.join("summary.json").exists() {
            continue;
        }
        let tok = tokenizer_for(cfg, base_dir, exp_dir)?;
        let source = std::sync::Arc::new(finetune::plan::source(cfg, &run_dir, tok));
        // A bad entry (a wrong data path) fails alone; the other entries still run.
        for entry in &cfg.finetune {
            match finetune::plan::plan_entry(entry, &source, &run_dir, base_dir) {
                Ok(p) => planned.extend(p.into_iter().map(|p| (spec.variant.clone(), p))),
                Err(e) => {
                    eprintln!("  {} {}: FAILED: {e}", spec.variant, entry.label());
                    failures.push(format!("{}/finetune/{}", spec.variant, entry.label()));
                }
            }
        }
    }
    let todo: Vec<_> = planned
        .into_iter()
        .filter(|(_, p)| force || !p.finished())
        .collect();
    if todo.is_empty() {
        return Ok(failures);
    }
    println!("downstream: {} run(s), {jobs} at a time", todo.len());
    let failed = parallel(jobs, &todo, |(variant, p)| {
        let o = finetune::run(&p.job, &p.source, &p.prepared, &p.dir)
            .with_context(|| format!("{variant} {} {}", p.job.spec.label(), p.job.variant()))?;
        println!(
            "  {variant} {} {:<40} {} ({} steps, {:.0} s)",
            p.job.spec.label(),
            p.job.variant(),
            fmt_metrics(&o.metrics),
            o.steps,
            o.seconds
        );
        Ok(())
    });
    failures.extend(failed.into_iter().map(|i| {
        format!(
            "{}/finetune/{}/{}",
            todo[i].0,
            todo[i].1.job.spec.label(),
            todo[i].1.job.variant()
        )
    }));
    Ok(failures)
}

fn fmt_metrics(m: &[(String, f64)]) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tokenizer a pretraining run used: the file's `tokenizer.path`, or the one trained for
/// the experiment.
fn tokenizer_for(
    cfg: &pretext::config::Experiment,
    base_dir: &std::path::Path,
    exp_dir: &std::path::Path,
) -> Result<std::sync::Arc<Tokenizer>> {
    let path = data::tokenizer_path(&cfg.tokenizer, base_dir, exp_dir);
    Ok(std::sync::Arc::new(Tokenizer::load(
        &path,
        cfg.tokenizer.lowercase,
    )?))
}

/// Calls `f` on every item, `jobs` at a time; returns the indices that failed (each failure
/// is printed as it happens, and the others carry on).
fn parallel<T: Sync>(jobs: usize, items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Vec<usize> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    eprintln!("  FAILED: {e:#}");
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                }
            });
        }
    });
    let mut v = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort();
    v
}

/// Prepares `spec`'s data once so that `runs/<experiment>/tokenizer.json` (and the shard
/// cache, with `data.cache`) exist before runs that share them start (WordPiece training is
/// not deterministic; see data::prepare).
fn train_tokenizer_once(
    spec: &pretext::config::RunSpec,
    base_dir: &std::path::Path,
    exp_dir: &std::path::Path,
) -> Result<()> {
    let c = &spec.config;
    let p = data::prepare(
        &c.data,
        &c.tokenizer,
        c.training.seed,
        base_dir,
        Some(exp_dir),
    )?;
    if let Some((dir, built)) = &p.cache {
        println!(
            "  shard cache {} {}: {} training shard(s), {} tokens; {} held-out document(s)",
            dir.display(),
            if *built { "built" } else { "reused" },
            p.train.shards.len(),
            p.train.tokens(),
            p.heldout.documents()
        );
    }
    Ok(())
}

/// `pretext sweep`: the grid here, or a Slurm job-array script for it.
fn sweep(a: &SweepArgs) -> Result<()> {
    if a.local {
        return run_experiment(&RunArgs {
            file: a.file.clone(),
            fresh: false,
            force: false,
            stop_at: None,
            jobs: a.jobs,
            runs_dir: a.runs_dir.clone(),
            reports_dir: a.reports_dir.clone(),
            quiet: false,
            only: vec![],
            no_report: false,
        });
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
    let abs = |p: &std::path::Path| -> Result<PathBuf> {
        std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
    };
    let runs_dir = abs(&a.runs_dir)?;
    let exp_dir = runs_dir.join(&exp.base.name);
    let slurm_dir = exp_dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("cannot create {}", slurm_dir.display()))?;
    // Train the tokenizer now, once: array tasks starting together must not each train one.
    let base_dir = a
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    if let Some(first) = exp.runs.first() {
        train_tokenizer_once(first, &base_dir, &exp_dir)?;
    }
    let binary = std::env::current_exe().context("locating the pretext binary")?;
    let script = pretext::sweep::slurm_script(
        &exp,
        &res,
        &pretext::sweep::Paths {
            binary: &binary,
            experiment: &abs(&a.file)?,
            workdir: &abs(std::path::Path::new("."))?,
            runs_dir: &runs_dir,
            reports_dir: &abs(&a.reports_dir)?,
        },
    );
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| slurm_dir.join("sweep.sbatch"));
    std::fs::write(&out, script).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} run(s) → {}\n  submit: sbatch {}\n  then:   pretext report {}",
        a.file.display(),
        exp.runs.len(),
        out.display(),
        out.display(),
        exp_dir.display()
    );
    if a.submit {
        let sbatch = |args: &[&str]| -> Result<String> {
            let o = std::process::Command::new("sbatch")
                .args(args)
                .output()
                .context("running sbatch (is Slurm installed here?)")?;
            if !o.status.success() {
                anyhow::bail!(
                    "sbatch failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let id = sbatch(&["--parsable", &out.to_string_lossy()])?;
        let id = id.split(';').next().unwrap_or(&id).to_string();
        let report = format!(
            "{} report {} --out {}",
            pretext::sweep::quote(&binary.to_string_lossy()),
            pretext::sweep::quote(&exp_dir.to_string_lossy()),
            pretext::sweep::quote(&abs(&a.reports_dir)?.join(&exp.base.name).to_string_lossy())
        );
        let rid = sbatch(&[
            "--parsable",
            &format!("--dependency=afterany:{id}"),
            "--job-name=pretext-report",
            &format!("--output={}/report-%j.out", slurm_dir.display()),
            "--wrap",
            &report,
        ])?;
        println!("submitted: array job {id}, report job {rid} after it");
    }
    Ok(())
}

/// `pretext finetune`: one task on one checkpoint.
fn finetune_one(a: &FinetuneArgs) -> Result<()> {
    let (run_dir, ckpt) = if a.checkpoint.is_dir() {
        (
            a.checkpoint.clone(),
            a.checkpoint.join("checkpoints").join("latest.safetensors"),
        )
    } else {
        let run = a
            .checkpoint
            .parent()
            .and_then(|p| p.parent())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        (run, a.checkpoint.clone())
    };
    let config = train::checkpoint::read_config(&ckpt)?;
    let cfg: pretext::config::Experiment = toml::from_str(&config)
        .with_context(|| format!("{}: the checkpoint's config is unreadable", ckpt.display()))?;
    let tok_path = a.tokenizer.clone().unwrap_or_else(|| {
        run_dir
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("tokenizer.json")
    });
    let tok = std::sync::Arc::new(
        Tokenizer::load(&tok_path, cfg.tokenizer.lowercase)
            .context("pass the pretraining run's tokenizer with --tokenizer")?,
    );
    let mut spec = pretext::config::FinetuneSpec {
        task: a.task.clone(),
        data: a.data.to_string_lossy().into_owned(),
        init: vec![match a.init {
            InitArg::Pretrained => pretext::config::Init::Pretrained,
            InitArg::Scratch => pretext::config::Init::Scratch,
        }],
        mode: vec![match a.mode {
            ModeArg::Finetune => pretext::config::Mode::Finetune,
            ModeArg::Probe => pretext::config::Mode::Probe,
        }],
        seeds: vec![a.seed],
        lr: a.lr,
        probe_lr: a.lr,
        ..Default::default()
    };
    if let Some(v) = a.epochs {
        spec.epochs = v;
    }
    if let Some(v) = a.batch_size {
        spec.batch_size = v;
    }
    if let Some(v) = a.max_seq_len {
        spec.max_seq_len = v;
    }
    if let Some(v) = a.max_train_examples {
        spec.max_train_examples = v;
    }
    // The same checks as an experiment file's [[finetune]] entry.
    let check = pretext::config::Experiment {
        finetune: vec![spec.clone()],
        ..cfg.clone()
    };
    let text = toml::to_string(&check).context("serialising the settings")?;
    if let Err(errs) =
        pretext::config::LoadedExperiment::from_str(&text, std::path::Path::new("<command line>"))
    {
        // Name the flag, not the key of an experiment file the user never wrote.
        let lines: Vec<String> = errs
            .0
            .iter()
            .map(|e| match e.key.strip_prefix("finetune.0.") {
                Some(k) => format!("--{}: {}", k.replace('_', "-"), e.message),
                None => format!("{} (from the checkpoint's config): {}", e.key, e.message),
            })
            .collect();
        anyhow::bail!("{}", lines.join("\n"));
    }
    let task = finetune::task::find(&spec.task).context("unknown task")?;
    let splits = finetune::data::load(&task, &spec, std::path::Path::new("."))?;
    let prepared = finetune::prepare(&task, &spec, splits, &tok);
    let source = finetune::plan::source(&cfg, &run_dir, tok);
    let job = finetune::jobs(&spec).remove(0);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run_dir.join("finetune").join(task.name).join(job.variant()));
    let o = finetune::run(&job, &source, &prepared, &out)?;
    println!(
        "{} {}: dev {} ({} steps, {:.0} s) → {}",
        task.name,
        job.variant(),
        fmt_metrics(&o.metrics),
        o.steps,
        o.seconds,
        out.display()
    );
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
