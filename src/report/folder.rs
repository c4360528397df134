//! Where a report goes and what it may replace. `write` leaves the runs folder's path in
//! `.pretext-report` beside the README, so that drawing the report of other runs — `pretext
//! run` with another `--runs-dir`, or `pretext report` of them — does not silently replace a
//! report (often a committed one, whose runs may no longer exist) with one of different runs
//! under the same experiment name. Naming the folder with `--out` still writes anywhere.

use super::ReportError;
use anyhow::Result;
use std::path::{Component, Path, PathBuf};

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

/// `pretext report RUNS [--out DIR]`: the report of `runs/<experiment>` into `DIR`, by default
/// `reports/<experiment>`.
pub fn report(runs: &Path, out: Option<PathBuf>) -> Result<()> {
    let name = runs
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "experiment".into());
    match out {
        Some(out) => write(runs, &out),
        None => {
            let out = PathBuf::from("reports").join(&name);
            if !write_default(runs, &out)? {
                anyhow::bail!("no report written; name its folder with --out");
            }
            Ok(())
        }
    }
}

/// The report into the folder pretext chose (`reports/<experiment>`), unless that folder holds
/// a report drawn from other runs (`report::source`): then nothing is written and the line
/// printed says how to draw it elsewhere. Returns whether it was written.
pub fn write_default(exp_dir: &Path, out: &Path) -> Result<bool> {
    if let Some(source) = drawn_from(out) {
        if !same_runs(&source, exp_dir) {
            eprintln!(
                "report: not written: {} holds the report of {source}, not of {}; draw this one \
                 with `pretext report {} --out DIR`",
                out.display(),
                exp_dir.display(),
                crate::sweep::quote(&exp_dir.to_string_lossy())
            );
            return Ok(false);
        }
    }
    write(exp_dir, out)?;
    Ok(true)
}

/// Draws the report of `exp_dir` into `out`.
pub fn write(exp_dir: &Path, out: &Path) -> Result<()> {
    if let Some(kind) = crate::rundir::kind_of(out) {
        anyhow::bail!(
            "{}: this folder holds a {} run; a report written into it would mix its charts with              the run's files. Choose another folder for --out",
            out.display(),
            kind.name()
        );
    }
    let command = std::fs::read_to_string(exp_dir.join("command.txt"))
        .unwrap_or_else(|_| "(the command was not recorded)".into());
    let w = super::write(exp_dir, out, command.trim())?;
    println!(
        "report: {} ({} charts, PNG and SVG)",
        w.markdown.display(),
        w.charts.len()
    );
    Ok(())
}
