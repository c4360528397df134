//! Running an experiment file's grid: the shared preparation (tokenizer, shard cache) done
//! once up front, every pretraining run through a small job pool, then every `[[finetune]]`
//! entry on the finished runs, then the report. `pretext run` and `pretext sweep --local` are
//! this module; `main.rs` only turns flags into [`Options`].

use crate::config::{Experiment, LoadedExperiment, RunSpec};
use crate::data::{self, Tokenizer};
use crate::finetune::task::Kind::MlmProbe;
pub use crate::init_source::init_checkpoint;
use crate::pool::{own_threads, parallel};
use crate::{finetune, rundir, train};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to run a grid (the flags of `pretext run`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Ignore the checkpoints of unfinished runs and start them over.
    pub fresh: bool,
    /// Retrain finished runs too.
    pub force: bool,
    /// Stop every run after this step, checkpointed.
    pub stop_at: Option<u64>,
    /// Runs trained at the same time (at least 1).
    pub jobs: usize,
    pub runs_dir: PathBuf,
    pub reports_dir: PathBuf,
    /// No progress bar.
    pub quiet: bool,
    /// Train only these variants (empty: all).
    pub only: Vec<String>,
    /// Do not write the report at the end.
    pub no_report: bool,
    /// The command line, recorded in the experiment folder for the report.
    pub command: String,
}

/// The folder an experiment file's relative paths are anchored at.
pub fn base_dir(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new(".")).to_path_buf()
}

/// `pretext run FILE`: trains every unfinished run of the grid, then the downstream entries,
/// then writes the report. Runs that fail are named at the end; the others carry on.
pub fn run(file: &Path, opts: &Options) -> Result<()> {
    let mut exp = LoadedExperiment::load(file)?;
    if !opts.only.is_empty() {
        if let Some(unknown) = opts
            .only
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
        exp.runs.retain(|r| opts.only.contains(&r.variant));
    }
    let base_dir = base_dir(file);
    refuse_what_cannot_fit(file, &exp)?;
    refuse_runs_dir_in_a_run(&opts.runs_dir)?;
    // Both are found out before training, not after it.
    crate::files::need_folder(&opts.runs_dir.join(&exp.base.name), "--runs-dir")?;
    if !opts.no_report {
        crate::files::need_folder(&opts.reports_dir.join(&exp.base.name), "--reports-dir")?;
    }
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
    let exp_dir = opts.runs_dir.join(&exp.base.name);
    std::fs::create_dir_all(&exp_dir)
        .with_context(|| format!("cannot create the run directory {}", exp_dir.display()))?;
    let jobs = opts.jobs.max(1);
    // Each job trains on a pool of its own (`own_threads`); the global pool, for the work
    // before and between jobs, gets them all.
    let threads = exp.base.training.threads;
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(crate::pool::at_most_cores(threads).saturating_mul(jobs))
            .build_global()
            .ok();
    }
    rundir::write_shared(&exp_dir.join("command.txt"), opts.command.as_bytes())
        .with_context(|| format!("writing into {}", exp_dir.display()))?;
    println!(
        "{}: {} run(s) into {}, {jobs} at a time",
        file.display(),
        exp.runs.len(),
        exp_dir.display()
    );

    if !opts.force {
        refuse_finished_with_other_settings(file, &exp, &exp_dir)?;
    }
    let todo: Vec<&RunSpec> = exp
        .runs
        .iter()
        .filter(|spec| {
            let finished = rundir::finished(&exp_dir.join(&spec.variant));
            if finished && !opts.force {
                println!(
                    "  {:<32} finished earlier (use --force to retrain)",
                    spec.variant
                );
            }
            !finished || opts.force
        })
        .collect();
    // The tokenizer is trained once, before any run starts, so parallel runs share it.
    if let Some(first) = todo.first() {
        prepare_shared(first, &base_dir, &exp_dir)?;
    }
    let failed = parallel(jobs, &todo, |spec| {
        own_threads(spec.config.training.threads, || {
            pretrain_one(spec, &base_dir, &exp_dir, opts, jobs)
        })
    });
    let mut failures: Vec<String> = failed.iter().map(|&i| todo[i].variant.clone()).collect();
    failures.extend(run_downstream(&exp, &exp_dir, &base_dir, jobs, opts.force)?);
    println!(
        "TensorBoard: tensorboard --logdir {}",
        crate::sweep::quote(&exp_dir.to_string_lossy())
    );
    if !opts.no_report {
        crate::report::folder::write_default(&exp_dir, &opts.reports_dir.join(&exp.base.name))?;
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

/// Refuses a runs folder that is, or lies inside, a run folder (`--runs-dir runs/x/base`):
/// the experiment's folders would land among that run's checkpoints and logs.
pub fn refuse_runs_dir_in_a_run(runs_dir: &Path) -> Result<()> {
    if let Some((run, kind)) = rundir::enclosing_run(runs_dir) {
        anyhow::bail!(
            "--runs-dir {}: inside the {} run {}; runs written there would mix with its \
             files. Choose a runs folder outside any run folder (the default is `runs`)",
            runs_dir.display(),
            kind.name(),
            run.display()
        );
    }
    Ok(())
}

/// Refuses a grid one of whose runs would need more memory than the machine has, naming the
/// key, before anything is allocated (an allocation that fails aborts the process).
pub fn refuse_what_cannot_fit(file: &Path, exp: &LoadedExperiment) -> Result<()> {
    let Some(available) = crate::alloc::machine_memory() else {
        return Ok(());
    };
    for (spec, cfg) in exp
        .runs
        .iter()
        .zip(with_tokenizer_vocab(exp, &base_dir(file)))
    {
        if let Some((key, why)) = crate::config::memory::refuse(&cfg, available) {
            anyhow::bail!(
                "{}: key `{key}`: run `{}`: {why}",
                file.display(),
                spec.variant
            );
        }
    }
    Ok(())
}

/// The settings of each run with `tokenizer.vocab_size` set to the size of the tokenizer the
/// run will read, when `tokenizer.path` names one (the key is ignored then, and the parameter
/// count and memory estimate must not use it). Each tokenizer file is read once, however many
/// runs share it; unreadable files are left to the run to name.
pub fn with_tokenizer_vocab(exp: &LoadedExperiment, base_dir: &Path) -> Vec<Experiment> {
    let mut sizes: std::collections::HashMap<&str, Option<usize>> = Default::default();
    exp.runs
        .iter()
        .map(|r| {
            let mut out = r.config.clone();
            if let Some(p) = &r.config.tokenizer.path {
                let size = *sizes.entry(p).or_insert_with(|| {
                    Tokenizer::load(&base_dir.join(p), r.config.tokenizer.lowercase)
                        .ok()
                        .map(|t| t.vocab_size())
                });
                if let Some(v) = size {
                    out.tokenizer.vocab_size = v;
                }
            }
            out
        })
        .collect()
}

/// Refuses to pass off a finished run as a result of the file when the file changed since:
/// a run whose `config.resolved.toml` differs from what the file now resolves to is named,
/// with the first differing line, before anything runs. (An unfinished run with other
/// settings is refused by its checkpoint.)
fn refuse_finished_with_other_settings(
    file: &Path,
    exp: &LoadedExperiment,
    exp_dir: &Path,
) -> Result<()> {
    for spec in &exp.runs {
        let dir = exp_dir.join(&spec.variant);
        if !rundir::finished(&dir) {
            continue;
        }
        let Ok(old) = std::fs::read_to_string(dir.join("config.resolved.toml")) else {
            continue;
        };
        let new = train::settings::resolved_text(&spec.config);
        let Some((n, was, now)) = train::settings::settings_difference(&old, &new) else {
            continue;
        };
        anyhow::bail!(
            "{}: run `{}` finished with other settings than the file now gives \
             ({}, line {n}: `{was}`, now `{now}`); its results describe the old settings. \
             Rerun with --force to retrain it, or give the experiment a new name",
            file.display(),
            spec.variant,
            dir.join("config.resolved.toml").display()
        );
    }
    Ok(())
}

/// Trains one run of the grid and, when it reached its last step, writes its summary.
fn pretrain_one(
    spec: &RunSpec,
    base_dir: &Path,
    exp_dir: &Path,
    opts: &Options,
    jobs: usize,
) -> Result<()> {
    let dir = exp_dir.join(&spec.variant);
    let cfg = &spec.config;
    let prepared = data::prepare(&cfg.data, &cfg.tokenizer, base_dir, Some(exp_dir))?;
    // Unfinished runs continue from their checkpoint unless told otherwise.
    let train_opts = train::Options {
        resume: !opts.fresh && !opts.force,
        progress: !opts.quiet && jobs == 1,
        stop_at: opts.stop_at,
        init: init_checkpoint(cfg, base_dir).with_context(|| format!("run {}", spec.variant))?,
    };
    let s = train::run(cfg, &prepared, &dir, &train_opts)
        .with_context(|| format!("run {}", spec.variant))?;
    print_summary(&spec.variant, &s);
    if !s.finished {
        return Ok(()); // stopped early on request: not finished
    }
    let summary = serde_json::json!({
        "steps": s.steps,
        "resumed_from": s.resumed_from,
        "tokens_per_second": s.tokens_per_second,
        "train_seconds": s.train_seconds,
        "first_train": s.first.scalars(),
        "last_train": s.last_train.scalars(),
        "last_eval": s.last_eval.as_ref().map(|e| {
            let mut v = e.scalars();
            v.extend(s.probes.iter().cloned());
            v
        }),
        "eval_fingerprint": s.eval_fingerprint,
    });
    let done = rundir::summary_path(&dir);
    rundir::write_atomically(&done, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("writing {}", done.display()))?;
    Ok(())
}

/// Runs every `[[finetune]]` entry on every finished pretraining run; returns the failures.
fn run_downstream(
    exp: &LoadedExperiment,
    exp_dir: &Path,
    base_dir: &Path,
    jobs: usize,
    force: bool,
) -> Result<Vec<String>> {
    let mut planned = Vec::new();
    let mut failures = Vec::new();
    for spec in &exp.runs {
        let cfg = &spec.config;
        let run_dir = exp_dir.join(&spec.variant);
        if cfg.finetune.is_empty() || !rundir::finished(&run_dir) {
            continue;
        }
        let tok = tokenizer_for(cfg, base_dir, exp_dir)?;
        let source = Arc::new(finetune::plan::source(cfg, &run_dir, tok));
        // A bad entry (a wrong data path) fails alone; the other entries still run.
        for entry in &cfg.finetune {
            if finetune::task::find(&entry.task).is_some_and(|t| t.kind == MlmProbe) {
                let tok = data::tokenizer_path(&cfg.tokenizer, base_dir, exp_dir);
                match crate::predict::downstream::run_entry(&run_dir, &tok, entry, base_dir, force)
                {
                    Ok(Some(line)) => println!("  {} {}: {line}", spec.variant, entry.label()),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("  {} {}: FAILED: {e:#}", spec.variant, entry.label());
                        failures.push(format!("{}/finetune/{}", spec.variant, entry.label()));
                    }
                }
                continue;
            }
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
    let threads = exp.base.training.threads;
    let failed = parallel(jobs, &todo, |(variant, p)| {
        let o = own_threads(threads, || {
            finetune::run(&p.job, &p.source, &p.prepared, &p.dir)
        })
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

/// `name value, name value` with three decimals.
pub fn fmt_metrics(m: &[(String, f64)]) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tokenizer a pretraining run used: the file's `tokenizer.path`, or the one trained for
/// the experiment.
fn tokenizer_for(cfg: &Experiment, base_dir: &Path, exp_dir: &Path) -> Result<Arc<Tokenizer>> {
    let path = data::tokenizer_path(&cfg.tokenizer, base_dir, exp_dir);
    Ok(Arc::new(Tokenizer::load(&path, cfg.tokenizer.lowercase)?))
}

/// Prepares `spec`'s data once so that `runs/<experiment>/tokenizer.json` (and the shard
/// cache, with `data.cache`) exist before runs that share them start (WordPiece training is
/// not deterministic; see data::prepare).
pub fn prepare_shared(spec: &RunSpec, base_dir: &Path, exp_dir: &Path) -> Result<()> {
    let c = &spec.config;
    let p = data::prepare(&c.data, &c.tokenizer, base_dir, Some(exp_dir))?;
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
        .map(|e| fmt_metrics(&e.scalars()))
        .unwrap_or_else(|| "none".into());
    let resumed = s
        .resumed_from
        .map(|r| format!(" (resumed at step {r})"))
        .unwrap_or_default();
    if s.steps == 0 {
        // `training.steps = 0`: the run only holds and scores its model.init.
        println!("  {variant:<32} no training steps (model.init as it is); held-out [{eval}]");
        return;
    }
    println!(
        "  {variant:<32} step {}{resumed}: train loss [{}] → [{}]; held-out [{eval}]; {:.0} tokens/s",
        s.steps,
        fmt(&s.first),
        fmt(&s.last_train),
        s.tokens_per_second
    );
}
