//! Which runs a report folder was drawn from. `write` leaves the runs folder's path in
//! `.pretext-report` beside the README, so that drawing the report of other runs — `pretext
//! run` with another `--runs-dir`, or `pretext report` of them — does not silently replace a
//! report (often a committed one, whose runs may no longer exist) with one of different runs
//! under the same experiment name. Naming the folder with `--out` still writes anywhere.

use super::ReportError;
use std::path::{Component, Path};

/// The marker file in a report folder.
pub const FILE: &str = ".pretext-report";

/// The runs folder a report folder says it was drawn from (reports drawn before pretext left
/// the marker say nothing).
pub fn drawn_from(out: &Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join(FILE)).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether `source` (as `drawn_from` read it) names `exp_dir`: the same folder when both
/// resolve, else the same path as written (a report's runs may be gone, or on another machine).
pub fn same_runs(source: &str, exp_dir: &Path) -> bool {
    match (
        std::fs::canonicalize(source),
        std::fs::canonicalize(exp_dir),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => normal(Path::new(source)) == normal(exp_dir),
    }
}

fn normal(p: &Path) -> Vec<Component<'_>> {
    p.components().filter(|c| *c != Component::CurDir).collect()
}

/// Records `exp_dir` as the runs `out`'s report was drawn from.
pub(super) fn mark(out: &Path, exp_dir: &Path) -> Result<(), ReportError> {
    let path = out.join(FILE);
    let text = format!("{}\n", exp_dir.display());
    crate::rundir::write_atomically(&path, text.as_bytes()).map_err(|e| ReportError::Io {
        path,
        reason: e.to_string(),
    })
}
