//! An experiment file checked whole: `config`'s schema and value ranges, then the rules each
//! module keeps beside what it registers — every objective's (`objectives::registry::check`)
//! and every downstream task's (`finetune::task::check_entries`). `config` is a leaf that
//! imports no other module of pretext; this is where the rules meet, once.

use crate::config::{ConfigErrors, Experiment, LoadedExperiment};
use std::path::Path;

/// Every rule outside `config`, as `(key, message)` for each problem.
pub fn rules(e: &Experiment) -> Vec<(String, String)> {
    let mut out = crate::objectives::registry::check(&e.objectives);
    out.extend(crate::finetune::task::check_entries(&e.finetune, &e.model));
    out
}

impl LoadedExperiment {
    /// Reads, checks and expands `path`: every problem found is reported (file, line, key),
    /// not only the first.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with(path, rules)
    }

    /// Like [`load`](Self::load) for text already in memory; `path` names it in errors and
    /// anchors relative corpus paths.
    pub fn from_str(text: &str, path: &Path) -> Result<Self, ConfigErrors> {
        Self::parse(text, path, rules)
    }
}
