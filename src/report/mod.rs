//! Reports: reads `runs/<experiment>/`, draws charts (PNG + SVG) and writes a Markdown report
//! with the tables, the charts, the command, the config and the machine. Knows nothing about
//! training beyond the files a run leaves.

pub mod axis;
pub mod charts;
pub mod cross;
pub mod downstream;
pub mod folder;
pub mod runs;
pub mod selection;
pub mod timeline;

pub use folder::{drawn_from, same_runs};
pub use runs::ReportError;

use charts::{Line, MeanStd};
use runs::{groups, mean_curve, mean_std, smooth, Run};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `write` produced.
pub struct Written {
    pub markdown: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// The metrics logged in `split` rows, in order of first appearance. `train_seconds` is the
/// clock of a budgeted run, not a metric: the time section charts against it instead.
pub(crate) fn keys(runs: &[Run], split: &str) -> Vec<String> {
    let mut k: Vec<String> = Vec::new();
    for r in runs {
        for row in r.rows.iter().filter(|row| row.split == split) {
            for key in row.values.keys() {
                if key != "train_seconds" && !k.contains(key) {
                    k.push(key.clone());
                }
            }
        }
    }
    k
}

fn y_label(key: &str) -> &'static str {
    if key.ends_with("accuracy") {
        "accuracy (fraction)"
    } else if key.ends_with("loss") {
        "cross-entropy (nats)"
    } else if key == "lr" {
        "learning rate"
    } else if key == "grad_norm" {
        "global gradient L2 norm (before clipping)"
    } else if key == "tokens_per_second" {
        "tokens / second"
    } else {
        "value"
    }
}

fn file_name(split: &str, key: &str) -> String {
    format!("{split}_{}", key.replace('/', "_"))
}

/// Links a chart written at `<stem>.png` from the Markdown and records it: the link is the
/// name of the file the chart was written to, derived once.
fn embed(md: &mut String, charts: &mut Vec<PathBuf>, stem: &Path, title: &str) {
    let png = charts::file(stem, "png");
    let f = png
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(md, "![{title}]({f})\n");
    charts.push(png);
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l[12..].trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.into());
    format!("{cpu}, {cores} cores, {os}")
}

/// `mean ± std` of `xs` with `digits` decimals, `–` when there is nothing.
pub(crate) fn mean_std_cell(xs: &[f64], digits: usize) -> String {
    if xs.is_empty() {
        return "–".into();
    }
    let (m, s) = mean_std(xs);
    if xs.len() == 1 {
        // One value has no spread; "± 0.000" would claim one.
        return format!("{m:.digits$}");
    }
    format!("{m:.digits$} ± {s:.digits$}")
}

/// A Markdown table: one row per group, one column per key, each cell the mean ± std of the
/// group's last held-out value of that key; then a blank line.
pub(crate) fn eval_table(
    md: &mut String,
    first: &str,
    grouped: &[(String, Vec<&Run>)],
    keys: &[String],
    digits: usize,
) {
    let _ = writeln!(md, "| {first} | n | {} |", keys.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(keys.len()));
    for (g, rs) in grouped {
        let cells: Vec<String> = keys
            .iter()
            .map(|k| {
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.last("eval", k)).collect();
                mean_std_cell(&xs, digits)
            })
            .collect();
        let _ = writeln!(md, "| {g} | {} | {} |", rs.len(), cells.join(" | "));
    }
    md.push('\n');
}

/// Mean ± std over each group's runs of the last held-out `key`, one point per group that
/// has it; a group keeps its colour (its position) even when another group has no value.
pub(crate) fn final_points(grouped: &[(String, Vec<&Run>)], key: &str) -> Vec<MeanStd> {
    grouped
        .iter()
        .enumerate()
        .filter_map(|(i, (g, rs))| {
            let xs: Vec<f64> = rs.iter().filter_map(|r| r.last("eval", key)).collect();
            (!xs.is_empty()).then(|| {
                let (mean, std) = mean_std(&xs);
                MeanStd {
                    label: g.clone(),
                    colour: i,
                    mean,
                    std,
                    n: xs.len(),
                }
            })
        })
        .collect()
}

/// Says whether the runs were scored on one held-out set (`train::evaluation`), and which
/// runs used which when they were not: their held-out columns do not compare.
fn evaluation_sets(md: &mut String, runs: &[runs::Run]) {
    let mut sets: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in runs {
        let Some(f) = r.eval_fingerprint.as_deref() else {
            continue;
        };
        match sets.iter_mut().find(|(g, _)| *g == f) {
            Some((_, v)) => v.push(&r.variant),
            None => sets.push((f, vec![&r.variant])),
        }
    }
    match sets.as_slice() {
        [] => {}
        [(f, v)] => {
            let _ = writeln!(
                md,
                "All {} finished runs were scored on one held-out evaluation set (fingerprint `{f}`): \
                 the same documents, token ids and masked positions.\n",
                v.len()
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "**These runs were scored on different held-out sets**, so their held-out \
                 columns do not compare across sets (the set follows the held-out documents, \
                 the tokenizer, `training.seq_len` and `training.eval_batches`):\n"
            );
            for (f, v) in &sets {
                let _ = writeln!(md, "- `{f}`: {}", v.join(", "));
            }
            let _ = writeln!(md);
        }
    }
}

/// Writes charts and `README.md` for the runs in `exp_dir` into `out`. `command` is how the
/// runs were made, for the report's reproduction section.
pub fn write(exp_dir: &Path, out: &Path, command: &str) -> Result<Written, ReportError> {
    let runs = runs::read(exp_dir)?;
    crate::files::folder_possible(out, "--out").map_err(|reason| ReportError::Io {
        path: out.into(),
        reason,
    })?;
    std::fs::create_dir_all(out).map_err(|e| ReportError::Io {
        path: out.into(),
        reason: e.to_string(),
    })?;
    let grouped = groups(&runs);
    let mut charts_written = Vec::new();
    let mut md = String::new();
    let name = exp_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(md, "# {name}\n");
    // A researcher's findings, kept in the report folder, survive regeneration.
    if let Ok(findings) = std::fs::read_to_string(out.join("findings.md")) {
        let _ = writeln!(md, "## Findings\n\n{}\n", findings.trim());
    }
    let unfinished = runs.iter().filter(|r| !r.finished).count();
    let seeds: Vec<usize> = grouped.iter().map(|(_, v)| v.len()).collect();
    let _ = writeln!(
        md,
        "{} runs in {} groups (seeds per group: {:?}){}.\n",
        runs.len(),
        grouped.len(),
        seeds,
        if unfinished > 0 {
            format!("; **{unfinished} runs have not finished**, their last logged values are used")
        } else {
            String::new()
        }
    );

    // Final held-out metrics, mean ± std over seeds.
    let eval_keys = keys(&runs, "eval");
    if !eval_keys.is_empty() {
        let _ = writeln!(
            md,
            "## Held-out metrics at the last evaluation (mean ± sample std over seeds)\n"
        );
        eval_table(&mut md, "variant", &grouped, &eval_keys, 4);
        evaluation_sets(&mut md, &runs);
        cross::write(&mut md, &grouped);
        if let Some(axis) = axis::numeric_axis(&runs) {
            let key = if eval_keys.iter().any(|k| k == "mlm/loss") {
                "mlm/loss"
            } else {
                "loss"
            };
            let series = axis::series(&runs, &axis, key);
            let _ = writeln!(
                md,
                "## Final held-out {key} against {axis}
"
            );
            axis::table(&mut md, &axis, key, &series);
            let stem = out.join(format!("final_vs_{}", axis.replace(['.', '/'], "_")));
            axis::chart(
                &stem,
                &format!("final held-out {key} against {axis}"),
                &axis,
                key,
                &series,
            )?;
            embed(
                &mut md,
                &mut charts_written,
                &stem,
                &format!("{key} against {axis}"),
            );
            let _ = writeln!(md, "Mean over seeds with min–max whiskers; a cross at the top edge marks a setting with runs that did not finish (diverged, or still running).\n");
        }
    }

    // Line charts: every train and eval scalar.
    let _ = writeln!(md, "## Curves\n\nSolid: mean over seeds (training curves smoothed with an EMA of 0.6, as TensorBoard's slider); faint: the unsmoothed mean. Each variant keeps its colour in every chart.\n");
    for split in ["train", "eval"] {
        for key in keys(&runs, split) {
            let lines: Vec<Line> = grouped
                .iter()
                .enumerate()
                .filter_map(|(i, (g, rs))| {
                    let curves: Vec<_> = rs
                        .iter()
                        .map(|r| r.series(split, &key))
                        .filter(|c| !c.is_empty())
                        .collect();
                    if curves.is_empty() {
                        return None;
                    }
                    let mean = mean_curve(&curves);
                    let smoothable = split == "train" && key != "lr";
                    Some(Line {
                        label: g.clone(),
                        colour: i,
                        main: if smoothable {
                            smooth(&mean, 0.6)
                        } else {
                            mean.clone()
                        },
                        faint: if smoothable { vec![mean] } else { curves },
                    })
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            let stem = out.join(file_name(split, &key));
            let title = format!("{split}: {key}");
            charts::line_chart(&stem, &title, "step", y_label(&key), &lines)?;
            embed(&mut md, &mut charts_written, &stem, &title);
        }
    }

    // Final held-out metrics: mean ± std over seeds per variant.
    if !eval_keys.is_empty() {
        let _ = writeln!(md, "## Final held-out metrics\n");
        for key in &eval_keys {
            let points = final_points(&grouped, key);
            let stem = out.join(format!("final_{}", file_name("eval", key)));
            let title = format!("final held-out {key}");
            charts::mean_std_chart(&stem, &title, y_label(key), &points)?;
            embed(&mut md, &mut charts_written, &stem, &title);
        }
    }

    timeline::write(&mut md, &mut charts_written, out, &grouped, &eval_keys)?;
    downstream::write(exp_dir, out, &mut md, &mut charts_written)?;

    let config = runs
        .first()
        .and_then(|r| std::fs::read_to_string(r.dir.join("config.resolved.toml")).ok())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "## Reproduce\n\n```sh\n{command}\n```\n\nMachine: {}.\n",
        machine()
    );
    let _ = writeln!(md, "<details><summary>Resolved config of the first run ({})</summary>\n\n```toml\n{config}```\n</details>\n", runs[0].variant);
    let markdown = out.join("README.md");
    std::fs::write(&markdown, md).map_err(|e| ReportError::Io {
        path: markdown.clone(),
        reason: e.to_string(),
    })?;
    folder::mark(out, exp_dir)?;
    Ok(Written {
        markdown,
        charts: charts_written,
    })
}
