//! The downstream runs of an experiment: every `[[finetune]]` entry's `init × mode × seeds`
//! for one finished pretraining run, each with its directory
//! `runs/<experiment>/<variant>/finetune/<task>/<init=…,mode=…,seed=…>/`.

use super::run::{jobs, prepare, FinetuneError, Job, Prepared, Source};
use crate::config::Experiment;
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
        self.dir.join("summary.json").exists()
    }
}

/// The pretraining run in `run_dir` as a source of encoders.
pub fn source(cfg: &Experiment, run_dir: &Path, tokenizer: Arc<Tokenizer>) -> Source {
    Source {
        model: cfg.model.clone(),
        tokenizer,
        checkpoint: Some(run_dir.join("checkpoints").join("latest.safetensors")),
    }
}

/// Reads and tokenises each entry's data once and lists its runs.
pub fn plan(
    cfg: &Experiment,
    run_dir: &Path,
    tokenizer: Arc<Tokenizer>,
    base_dir: &Path,
) -> Result<Vec<Planned>, FinetuneError> {
    let source = Arc::new(source(cfg, run_dir, tokenizer.clone()));
    let mut out = Vec::new();
    for spec in &cfg.finetune {
        let task = super::task::find(&spec.task)
            .ok_or_else(|| FinetuneError::Setup(format!("unknown task `{}`", spec.task)))?;
        let splits = super::data::load(&task, spec, base_dir)?;
        let prepared = Arc::new(prepare(&task, spec, splits, &tokenizer));
        for job in jobs(spec) {
            out.push(Planned {
                dir: run_dir
                    .join("finetune")
                    .join(spec.label())
                    .join(job.variant()),
                job,
                source: source.clone(),
                prepared: prepared.clone(),
            });
        }
    }
    Ok(out)
}
