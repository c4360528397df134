//! `pretext finetune`: one task on one pretraining run's checkpoint, outside an experiment
//! file. The flags become a `[[finetune]]` entry and go through the same checks as one.

use crate::config::{Experiment, FinetuneSpec, Init, LoadedExperiment, Mode};
use crate::data::Tokenizer;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `pretext finetune` was asked (unset options keep the entry's defaults).
#[derive(Debug, Clone)]
pub struct Request {
    /// A pretraining run directory, or its checkpoint file.
    pub checkpoint: PathBuf,
    pub task: String,
    pub data: PathBuf,
    pub init: Init,
    pub mode: Mode,
    pub seed: u64,
    pub epochs: Option<usize>,
    pub lr: Option<f64>,
    pub batch_size: Option<usize>,
    pub max_seq_len: Option<usize>,
    pub max_train_examples: Option<usize>,
    pub precision: crate::config::Precision,
    /// Default: the experiment's tokenizer.json beside the run directory.
    pub tokenizer: Option<PathBuf>,
    /// Default: `<run>/finetune/<task>/<init=…,mode=…,seed=…>`.
    pub out: Option<PathBuf>,
    /// Also copy the run's dev predictions (`predictions.tsv` / `.json`) to this file.
    pub predict: Option<PathBuf>,
}

/// Trains and evaluates the request; returns the line to print.
pub fn run(a: &Request) -> Result<String> {
    let (run_dir, ckpt) = if a.checkpoint.is_dir() {
        (
            a.checkpoint.clone(),
            crate::rundir::checkpoint_path(&a.checkpoint),
        )
    } else {
        let run = a
            .checkpoint
            .parent()
            .and_then(|p| p.parent())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (run, a.checkpoint.clone())
    };
    let config = crate::train::checkpoint::read_config(&ckpt)?;
    let cfg: Experiment = toml::from_str(&config)
        .with_context(|| format!("{}: the checkpoint's config is unreadable", ckpt.display()))?;
    let (tok_path, tok) = Tokenizer::of_run(&run_dir, a.tokenizer.as_deref(), &cfg.tokenizer)?;
    let tok = Arc::new(tok);
    let spec = spec(a, &cfg)?;
    let task = super::task::find(&spec.task).context("unknown task")?;
    let splits = super::data::load(&task, &spec, Path::new("."))?;
    let prepared = super::prepare(&task, &spec, splits, &tok);
    let source = super::plan::source(&cfg, &run_dir, tok);
    let job = super::jobs(&spec).remove(0);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run_dir.join("finetune").join(task.name).join(job.variant()));
    crate::files::need_folder(&out, "--out")?;
    if let Some(file) = &a.predict {
        check_predict_path(
            file,
            &[ckpt.clone(), tok_path.clone(), a.data.clone()],
            &out,
        )?;
    }
    let o = super::run(&job, &source, &prepared, &out)?;
    let mut line = format!(
        "{} {}: dev {} ({} steps, {:.0} s) → {}",
        task.name,
        job.variant(),
        crate::grid::fmt_metrics(&o.metrics),
        o.steps,
        o.seconds,
        out.display()
    );
    if let Some(file) = &a.predict {
        let from = o
            .predictions
            .as_ref()
            .with_context(|| format!("--predict: task `{}` writes no predictions", task.name))?;
        let bytes = std::fs::read(from).with_context(|| format!("{}", from.display()))?;
        crate::rundir::write_atomically(file, &bytes)
            .with_context(|| format!("--predict {}", file.display()))?;
        line.push_str(&format!("; predictions → {}", file.display()));
    }
    Ok(line)
}

/// `--predict FILE` is checked before any training: it may not be a folder, one of the run's
/// inputs (the checkpoint, the tokenizer, a data file, compared as canonical paths), or a file
/// of another run's directory, whose own files it would replace.
fn check_predict_path(file: &Path, inputs: &[PathBuf], out: &Path) -> Result<()> {
    if file.is_dir() {
        anyhow::bail!(
            "--predict {}: is a folder; give a file path",
            file.display()
        );
    }
    let mut all = inputs.to_vec();
    for input in inputs.iter().filter(|p| p.is_dir()) {
        if let Ok(entries) = std::fs::read_dir(input) {
            all.extend(entries.flatten().map(|e| e.path()));
        }
    }
    crate::rundir::refuse_overwriting_input(file, &all)
        .map_err(|m| anyhow::anyhow!("--predict {m}"))?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let same = |a: &Path, b: &Path| matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
    if let Some(kind) = crate::rundir::kind_of(parent) {
        if !same(parent, out) {
            anyhow::bail!(
                "--predict {}: that folder holds a {} run, whose files this would replace; \
                 choose a path outside run directories (this run's predictions are also kept \
                 in {})",
                file.display(),
                kind.name(),
                out.display()
            );
        }
    }
    Ok(())
}

/// The request as a `[[finetune]]` entry, checked as an experiment file's would be, with
/// problems named by flag rather than by a key of a file the user never wrote.
fn spec(a: &Request, cfg: &Experiment) -> Result<FinetuneSpec> {
    let mut spec = FinetuneSpec {
        task: a.task.clone(),
        data: a.data.to_string_lossy().into_owned(),
        init: vec![a.init],
        mode: vec![a.mode],
        seeds: vec![a.seed],
        lr: a.lr.into_iter().collect(),
        probe_lr: a.lr.into_iter().collect(),
        precision: a.precision,
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
    let check = Experiment {
        finetune: vec![spec.clone()],
        ..cfg.clone()
    };
    let text = toml::to_string(&check).context("serialising the settings")?;
    if let Err(errs) = LoadedExperiment::from_str(&text, Path::new("<command line>")) {
        let lines: Vec<String> = errs
            .0
            .iter()
            .map(|e| match e.key.strip_prefix("finetune.0.") {
                // `--lr` sets both rates; a problem with either is the flag's.
                Some(k) => format!(
                    "--{}: {}",
                    k.replace("probe_lr", "lr").replace('_', "-"),
                    e.message
                ),
                None => format!("{} (from the checkpoint's config): {}", e.key, e.message),
            })
            .collect();
        anyhow::bail!("{}", lines.join("\n"));
    }
    Ok(spec)
}
