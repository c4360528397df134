//! Experiment files: the schema, loading with errors that name file/line/key, value ranges
//! and cross-field checks, and expansion of `[ablation]` axes into a grid of runs. A leaf: it
//! imports no other module of pretext; the rules that need the objective registry or the
//! task list are passed in (`Rules`) by `crate::experiment`.

mod ablation;
pub mod budget;
mod downstream;
mod error;
mod file;
pub mod memory;
mod model;
pub mod preset;
mod ramp;
mod schema;
mod slurm;
mod validate;

pub use budget::Budget;
pub use downstream::*;
pub use error::{line_of, ConfigError, ConfigErrors};
pub use model::*;
pub use ramp::{BatchRamp, ShortPhase};
pub use schema::*;

use std::path::{Path, PathBuf};

/// One run of the grid: the resolved settings and the overrides that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Directory-safe variant name, e.g. `norm=pre-ln,seed=2`; `base` when there is no grid.
    pub variant: String,
    /// `(key path, value)` pairs applied to the file to produce this run.
    pub overrides: Vec<(String, toml::Value)>,
    pub config: Experiment,
}

/// An experiment file, loaded and validated, with its grid expanded.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    pub path: PathBuf,
    pub base: Experiment,
    pub runs: Vec<RunSpec>,
}

/// Rules of an experiment that `config` cannot check itself because they belong to other
/// modules (the objective registry's, the downstream tasks'), as `(key, message)` for each
/// problem. `config` imports no other module of pretext: `crate::experiment` passes them in.
pub type Rules = fn(&Experiment) -> Vec<(String, String)>;

impl LoadedExperiment {
    /// Reads, checks (schema, ranges, then `rules`) and expands `path`. Every problem found is
    /// reported, not only the first. `LoadedExperiment::load` (in `crate::experiment`) is this
    /// with every module's rules.
    pub fn load_with(path: &Path, rules: Rules) -> Result<Self, ConfigErrors> {
        let text = file::read(path).map_err(|message| {
            ConfigErrors(vec![ConfigError {
                file: path.into(),
                key: String::new(),
                line: None,
                message,
            }])
        })?;
        Self::parse(&text, path, rules)
    }

    /// Like [`load_with`](Self::load_with) for text already in memory; `path` names it in
    /// errors and anchors relative corpus paths.
    pub fn parse(text: &str, path: &Path, rules: Rules) -> Result<Self, ConfigErrors> {
        let err = |key: String, line: Option<usize>, message: String| ConfigError {
            file: path.into(),
            key,
            line,
            message,
        };
        // Structure and types, straight from the text, so the parser's spans give lines.
        let de = toml::Deserializer::new(text);
        let mut base: Experiment = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|s| line_of(text, s.start));
            let key = if key == "." { String::new() } else { key };
            ConfigErrors(vec![err(key, line, inner.message().to_string())])
        })?;
        if base.model.preset.is_some() || base.training.budget.is_some() {
            // The preset fills the [model] keys the file leaves out, and a budget lifts the
            // default step limit; types were checked above with the file's own lines.
            let mut doc: toml::Value = toml::from_str(text).map_err(|e| {
                ConfigErrors(vec![err(String::new(), None, e.message().to_string())])
            })?;
            preset::apply(&mut doc).map_err(|(k, m)| {
                let line = find_key_line(text, &k);
                ConfigErrors(vec![err(k, line, m)])
            })?;
            budget::lift_step_limit(&mut doc);
            base = serde_path_to_error::deserialize(doc).map_err(|e| {
                ConfigErrors(vec![err(
                    e.path().to_string(),
                    None,
                    e.into_inner().to_string(),
                )])
            })?;
        }
        if base.name.is_empty() {
            base.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "experiment".into());
        }
        let mut problems = validate::check(&base);
        problems.extend(rules(&base));
        if !problems.is_empty() {
            return Err(ConfigErrors(
                problems
                    .into_iter()
                    .map(|(k, m)| {
                        let line = find_key_line(text, &k);
                        err(k, line, m)
                    })
                    .collect(),
            ));
        }
        let runs = ablation::expand(text, &base, path, rules)?;
        Ok(Self {
            path: path.into(),
            base,
            runs,
        })
    }
}

/// Best-effort line of a dotted key in the file: the last segment as `name =` inside the
/// section of the other segments. Only used to decorate messages.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let segs: Vec<&str> = key.split('.').collect();
    let (last, section) = segs.split_last()?;
    if last.parse::<usize>().is_ok() {
        return None;
    }
    let want_section = section.join(".");
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        if current == want_section {
            if let Some((k, _)) = l.split_once('=') {
                if k.trim().trim_matches('"') == *last {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}
