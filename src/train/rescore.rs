//! `pretext eval RUN --heldout FILE`: a finished run scored again, by this build's evaluation
//! code, on the shared held-out set of the experiment file it belongs to — the set every run
//! of that file was scored on while it trained (`evaluation`).
//!
//! Why it exists: a study outlives its evaluation code. When a measurement is added (the pair
//! heads' transfer to the other pair task, for ALBERT's Table 5), runs trained before it can
//! be scored with it without training them again, and the figures stay comparable because
//! the set is rebuilt from the same documents, tokenizer and seed (its fingerprint is checked
//! against the one the run recorded). Nothing in the run folder is written; with `data.cache`,
//! the experiment's shard cache is built if it is missing, as `pretext run` would build it.

use super::{settings, Metrics, Trainer};
use crate::config::LoadedExperiment;
use crate::data;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Rescored {
    pub run: String,
    /// The experiment file's variant the run is.
    pub variant: String,
    /// The held-out set's fingerprint now, and the one the run recorded when it finished.
    pub eval_fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    /// Every objective's held-out metrics, then the probes and head transfers (`probes`).
    pub scalars: Vec<(String, f64)>,
}

/// `pretext eval RUN --heldout FILE`: prints the scores, as text or one JSON object.
pub fn command(file: &Path, run_dir: &Path, json: bool) -> Result<()> {
    let r = rescore(file, run_dir)?;
    match json {
        true => println!("{}", serde_json::to_string(&r)?),
        false => println!("{}", r.describe()),
    }
    Ok(())
}

/// Scores the finished run `run_dir` (a variant of `file`) on `file`'s held-out set.
pub fn rescore(file: &Path, run_dir: &Path) -> Result<Rescored> {
    if run_dir.is_file() {
        bail!(
            "{}: --heldout takes a run directory (the one that holds checkpoints/), not a file",
            run_dir.display()
        );
    }
    if !run_dir.is_dir() {
        bail!("{}: no such run directory", run_dir.display());
    }
    let exp = LoadedExperiment::load(file)?;
    let variant = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{}: not a run directory", run_dir.display()))?;
    let spec = exp
        .runs
        .iter()
        .find(|r| r.variant == variant)
        .ok_or_else(|| {
            let known: Vec<&str> = exp.runs.iter().map(|r| r.variant.as_str()).collect();
            anyhow!(
                "{}: the run's folder name `{variant}` is no variant of {} (it has: {})",
                run_dir.display(),
                file.display(),
                known.join(", ")
            )
        })?;
    if !crate::rundir::finished(run_dir) {
        bail!(
            "{}: the run has not finished (no {}); --heldout scores finished runs",
            run_dir.display(),
            crate::rundir::summary_path(run_dir).display()
        );
    }
    let cfg = &spec.config;
    let resolved = run_dir.join("config.resolved.toml");
    let old = std::fs::read_to_string(&resolved)
        .with_context(|| format!("reading {}", resolved.display()))?;
    if let Some((n, was, now)) = settings::settings_difference(&old, &settings::resolved_text(cfg))
    {
        bail!(
            "{}: the run was trained with other settings than {} gives its variant `{variant}` \
             ({}, line {n}: `{was}`, the file: `{now}`); pass the experiment file it was run from",
            run_dir.display(),
            file.display(),
            resolved.display()
        );
    }
    let base_dir = file.parent().unwrap_or(Path::new("."));
    let exp_dir = run_dir.parent().unwrap_or(Path::new("."));
    // The run's tokenizer must be there already: rescoring never trains one.
    let tok = data::tokenizer_path(&cfg.tokenizer, base_dir, exp_dir);
    if !tok.is_file() {
        bail!(
            "{}: the run's tokenizer is missing; rescoring needs the vocabulary the run was \
             trained with",
            tok.display()
        );
    }
    let prepared = data::prepare(&cfg.data, &cfg.tokenizer, base_dir, Some(exp_dir))?;
    let mut trainer = Trainer::new(cfg, &prepared)?;
    trainer.init_from(&crate::rundir::checkpoint_path(run_dir))?;
    let mut scalars = trainer
        .evaluate()?
        .as_ref()
        .map_or_else(Vec::new, Metrics::scalars);
    scalars.extend(trainer.probes()?);
    let recorded_fingerprint = crate::rundir::recorded_eval_fingerprint(run_dir);
    Ok(Rescored {
        run: run_dir.display().to_string(),
        variant,
        eval_fingerprint: trainer.eval_fingerprint().map(str::to_string),
        recorded_fingerprint,
        scalars,
    })
}

impl Rescored {
    /// One line per metric, after a line naming the run and the set.
    pub fn describe(&self) -> String {
        let same = match (&self.eval_fingerprint, &self.recorded_fingerprint) {
            (Some(a), Some(b)) if a == b => format!("held-out set {a}, as the run recorded"),
            (Some(a), Some(b)) => format!(
                "held-out set {a} — NOT the set the run recorded ({b}): the documents or the \
                 tokenizer changed, so these figures are not comparable with its logs"
            ),
            (Some(a), None) => format!("held-out set {a}"),
            (None, _) => "nothing held out".into(),
        };
        let mut out = format!("{} (variant {}): {same}", self.run, self.variant);
        for (k, v) in &self.scalars {
            out.push_str(&format!("\n  {k:<28} {v:.4}"));
        }
        out
    }
}
