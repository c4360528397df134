//! Held-out quality against training time: the chart a time budget (`training.budget`) is
//! judged by. Runs of one setting reach different steps in the same time, so the x axis is
//! the `train_seconds` each evaluation row records, not the step.

use super::charts::{self, Line};
use super::runs::{mean_std, Run};
use super::ReportError;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// `(seconds, value)` of each evaluation of `run` that records its training time.
fn timed(run: &Run, key: &str) -> Vec<(u64, f64)> {
    run.rows
        .iter()
        .filter(|r| r.split == "eval")
        .filter_map(|r| {
            Some((
                r.values.get("train_seconds")?.round() as u64,
                *r.values.get(key)?,
            ))
        })
        .collect()
}

/// The k-th evaluation averaged over seeds (time and value alike), as far as every seed got.
fn mean_by_index(curves: &[Vec<(u64, f64)>]) -> Vec<(u64, f64)> {
    let n = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|k| {
            let m = curves.len() as f64;
            let t = curves.iter().map(|c| c[k].0 as f64).sum::<f64>() / m;
            (
                t.round() as u64,
                curves.iter().map(|c| c[k].1).sum::<f64>() / m,
            )
        })
        .collect()
}

/// Writes the section when the runs' evaluations record training time; charts go to `out`.
pub fn write(
    md: &mut String,
    charts_written: &mut Vec<PathBuf>,
    out: &Path,
    grouped: &[(String, Vec<&Run>)],
    keys: &[String],
) -> Result<(), ReportError> {
    let timed_runs = grouped
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .any(|r| !timed(r, "loss").is_empty());
    if !timed_runs {
        return Ok(());
    }
    let _ = writeln!(
        md,
        "## Held-out metrics against training time\n\nThe x axis is the time spent in training steps when each evaluation was taken (what `training.budget` counts: no data preparation, evaluation or checkpoints). Solid: the k-th evaluation averaged over seeds; faint: each seed.\n"
    );
    let _ = writeln!(
        md,
        "| variant | n | steps reached | training time (s) |\n|---|---|---|---|"
    );
    for (g, rs) in grouped {
        let of_runs =
            |f: &dyn Fn(&Run) -> Option<f64>| rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>();
        let steps = of_runs(&|r| {
            r.rows
                .iter()
                .rev()
                .find(|x| x.split == "eval")
                .map(|x| x.step as f64)
        });
        let secs = of_runs(&|r| r.last("eval", "train_seconds"));
        let cell = |xs: &[f64]| {
            let (m, s) = mean_std(xs);
            if xs.len() > 1 {
                format!("{m:.0} ± {s:.0}")
            } else {
                format!("{m:.0}")
            }
        };
        let _ = writeln!(
            md,
            "| {g} | {} | {} | {} |",
            rs.len(),
            cell(&steps),
            cell(&secs)
        );
    }
    md.push('\n');
    for key in keys {
        let lines: Vec<Line> = grouped
            .iter()
            .enumerate()
            .filter_map(|(i, (g, rs))| {
                let curves: Vec<_> = rs
                    .iter()
                    .map(|r| timed(r, key))
                    .filter(|c| !c.is_empty())
                    .collect();
                (!curves.is_empty()).then(|| Line {
                    label: g.clone(),
                    colour: i,
                    main: mean_by_index(&curves),
                    faint: curves,
                })
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let stem = out.join(format!("time_{}", key.replace('/', "_")));
        let title = format!("held-out {key} against training time");
        charts::line_chart(
            &stem,
            &title,
            "training time (s)",
            super::y_label(key),
            &lines,
        )?;
        super::embed(md, charts_written, &stem, &title);
    }
    Ok(())
}
