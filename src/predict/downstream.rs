//! The CrowS-Pairs probe as a downstream entry: `[[finetune]] task = "crows-pairs"` with
//! `data` the CSV, run by `pretext run` on every finished pretraining run of the grid, so a
//! study reports the bias of each objective mix beside its GLUE scores.
//!
//! Nothing is trained, so the entry's `init`, `mode` and `seeds` do not apply: the pretrained
//! checkpoint is scored once. The result is written as a downstream run folder,
//! `<run>/finetune/<entry>/init=pretrained,seed=1/` (config.resolved.toml, metrics.jsonl with
//! the overall score and one `score/<bias type>` per type, summary.json), the layout the
//! report's downstream tables and charts read — as they read STS-B embeddings.

use super::{bias, MaskedLm};
use crate::config::FinetuneSpec;
use crate::rundir::{self, RunKind};
use crate::train::log::RunLog;
use anyhow::{Context, Result};
use std::path::Path;

/// The folder of the entry's one result under `run_dir`.
pub fn result_dir(run_dir: &Path, entry: &FinetuneSpec) -> std::path::PathBuf {
    run_dir
        .join("finetune")
        .join(entry.label())
        .join("init=pretrained,seed=1")
}

/// Scores `run_dir`'s checkpoint unless done before (or `force`); returns the line to print,
/// `None` when the result was already there.
pub fn run_entry(
    run_dir: &Path,
    tokenizer: &Path,
    entry: &FinetuneSpec,
    base_dir: &Path,
    force: bool,
) -> Result<Option<String>> {
    let dir = result_dir(run_dir, entry);
    if rundir::finished(&dir) && !force {
        return Ok(None);
    }
    let pairs = bias::read_pairs(&base_dir.join(&entry.data))?;
    let lm = MaskedLm::load(run_dir, Some(tokenizer))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = rundir::claim(&dir, RunKind::Finetuning)?;
    let report = bias::score(&lm, &pairs)?;
    let text = toml::to_string(entry).context("the entry's settings")?;
    let resolved = dir.join("config.resolved.toml");
    rundir::write_atomically(&resolved, text.as_bytes())
        .with_context(|| format!("writing {}", resolved.display()))?;
    let mut metrics = vec![
        ("score".to_string(), report.score),
        ("pairs".to_string(), report.pairs as f64),
    ];
    for g in &report.per_type {
        metrics.push((format!("score/{}", g.bias_type), g.score));
    }
    let mut log = RunLog::open(&dir, None, &text).with_context(|| format!("{}", dir.display()))?;
    log.scalars(0, "eval", &metrics)
        .and_then(|_| log.flush())
        .with_context(|| format!("writing the logs of {}", dir.display()))?;
    let summary = serde_json::json!({
        "task": entry.task,
        "metric": "score",
        "init": "pretrained",
        "mode": "embed",
        "seed": 1,
        "steps": 0,
        "checkpoint_step": lm.step,
        "ties": report.ties,
        "skipped_too_long": report.skipped_too_long,
        "dev": metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    let path = rundir::summary_path(&dir);
    rundir::write_atomically(&path, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(format!(
        "crows-pairs score {:.2} % over {} pairs",
        report.score, report.pairs
    )))
}
