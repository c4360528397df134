//! The downstream runs of an experiment: every `[[finetune]]` entry's `init × mode × seeds`
//! for one finished pretraining run, each with its directory
//! `runs/<experiment>/<variant>/finetune/<task>/<init=…,mode=…,seed=…>/`.

use super::job::{jobs, prepare, Job, Prepared, Source};
use super::run::FinetuneError;
use crate::config::{Experiment, FinetuneSpec};
use crate::data::Tokenizer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Planned {
    pub job: Job,
    pub dir: PathBuf,
    pub source: Arc<Source>,
    pub prepared: Arc<Prepared>,
}

impl Planned {
    pub fn finished(&self) -> bool {
        crate::rundir::finished(&self.dir)
    }
}

/// The pretraining run in `run_dir` as a source of encoders.
pub fn source(cfg: &Experiment, run_dir: &Path, tokenizer: Arc<Tokenizer>) -> Source {
    Source {
        model: cfg.model.clone(),
        tokenizer,
        checkpoint: Some(crate::rundir::checkpoint_path(run_dir)),
    }
}

/// Reads and tokenises one entry's data once and lists its runs.
pub fn plan_entry(
    spec: &FinetuneSpec,
    source: &Arc<Source>,
    run_dir: &Path,
    base_dir: &Path,
) -> Result<Vec<Planned>, FinetuneError> {
    let task = super::task::find(&spec.task)
        .ok_or_else(|| FinetuneError::Setup(format!("unknown task `{}`", spec.task)))?;
    let splits = super::data::load(&task, spec, base_dir)?;
    let prepared = Arc::new(prepare(&task, spec, splits, &source.tokenizer));
    Ok(jobs(spec)
        .into_iter()
        .map(|job| Planned {
            dir: run_dir
                .join("finetune")
                .join(spec.label())
                .join(job.variant()),
            job,
            source: source.clone(),
            prepared: prepared.clone(),
        })
        .collect())
}
