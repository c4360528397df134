//! The downstream part of a report: per task, dev metrics by `init × mode` (mean ± std over
//! fine-tuning seeds) with charts, and the two comparisons the experiment is for — pretrained
//! versus scratch, and probe versus fine-tune — each with its gain in units of seed spread.

use super::charts::{self, Line};
use super::runs::{self, groups, mean_curve, mean_std, ReportError};
use super::selection::{self, Choice};
use super::{embed, eval_table, final_points, keys, mean_std_cell, y_label};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `(pretraining variant, task, task folder)` for every `<variant>/finetune/<task>/` found.
fn task_dirs(exp_dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(variants) = std::fs::read_dir(exp_dir) else {
        return out;
    };
    let mut variants: Vec<PathBuf> = variants.filter_map(Result::ok).map(|e| e.path()).collect();
    variants.sort();
    for v in variants {
        let Ok(tasks) = std::fs::read_dir(v.join("finetune")) else {
            continue;
        };
        let mut tasks: Vec<PathBuf> = tasks.filter_map(Result::ok).map(|e| e.path()).collect();
        tasks.sort();
        for t in tasks.into_iter().filter(|t| t.is_dir()) {
            let name = |p: &Path| p.file_name().map(|s| s.to_string_lossy().into_owned());
            if let (Some(vn), Some(tn)) = (name(&v), name(&t)) {
                out.push((vn, tn, t));
            }
        }
    }
    out
}

/// The headline metric of a task (from its runs' summaries; the registry as a fallback).
fn headline(task: &str, dir: &Path) -> String {
    std::fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .find_map(|e| {
            let s = std::fs::read_to_string(e.path().join("summary.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            v["metric"].as_str().map(String::from)
        })
        .or_else(|| crate::finetune::task::find(task).map(|t| t.metric.to_string()))
        .unwrap_or_else(|| "accuracy".into())
}

fn cell(xs: &[f64]) -> String {
    mean_std_cell(xs, 3)
}

/// One side of a comparison: the headline values of the runs of `group`.
fn values(grouped: &[(String, Vec<&runs::Run>)], group: &str, metric: &str) -> Vec<f64> {
    grouped
        .iter()
        .find(|(g, _)| g == group)
        .map(|(_, rs)| rs.iter().filter_map(|r| r.last("eval", metric)).collect())
        .unwrap_or_default()
}

/// `| a | b | a − b | spread | verdict |` cells: the difference of means against the larger
/// sample std of the two sides.
fn compare(a: &[f64], b: &[f64]) -> Option<String> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let spread = sa.max(sb);
    let diff = ma - mb;
    let verdict = if a.len() < 2 || b.len() < 2 {
        "one seed: no spread to compare with"
    } else if diff.abs() > spread {
        if diff > 0.0 {
            "higher, beyond seed spread"
        } else {
            "lower, beyond seed spread"
        }
    } else {
        "within seed spread"
    };
    Some(format!(
        "{} | {} | {diff:+.3} | {spread:.3} | {verdict}",
        cell(a),
        cell(b)
    ))
}

/// Appends the downstream section to `md` (nothing if there are no downstream runs).
pub fn write(
    exp_dir: &Path,
    out: &Path,
    md: &mut String,
    charts_written: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    let dirs = task_dirs(exp_dir);
    if dirs.is_empty() {
        return Ok(());
    }
    let several = dirs.iter().any(|(v, ..)| *v != dirs[0].0);
    let _ = writeln!(
        md,
        "## Downstream tasks\n\nDev metrics after the last epoch (no selection on dev), mean ± sample std over fine-tuning seeds. `init`: the pretraining checkpoint or the same architecture from scratch; `mode`: every parameter trained (finetune) or only a head on frozen features (probe).\n"
    );
    let mut pre_vs_scratch = Vec::new();
    let mut probe_vs_ft = Vec::new();
    let mut rates = String::new();
    let mut unselectable = Vec::new();
    let mut incomplete = Vec::new();
    for (variant, task, dir) in &dirs {
        let Ok(rs) = runs::read(dir) else { continue };
        let grouped = groups(&rs);
        let metric = headline(task, dir);
        let title = if several {
            format!("{task} (pretraining run {variant})")
        } else {
            task.clone()
        };
        let _ = writeln!(md, "### {title}\n");
        let mut keys: Vec<String> = keys(&rs, "eval")
            .into_iter()
            .filter(|k| k != "epoch")
            .collect();
        keys.sort_by_key(|k| (*k != metric, k.clone()));
        eval_table(md, "runs", &grouped, &keys, 3);

        let stem_base = if several {
            format!("downstream_{variant}_{task}")
        } else {
            format!("downstream_{task}")
        }
        .replace([',', '='], "_");
        let points = final_points(&grouped, &metric);
        if !points.is_empty() {
            let stem = out.join(&stem_base);
            let t = format!("{title}: dev {metric}");
            charts::mean_std_chart(&stem, &t, &format!("dev {metric}"), &points)?;
            embed(md, charts_written, &stem, &t);
        }
        let lines: Vec<Line> = grouped
            .iter()
            .enumerate()
            .filter_map(|(i, (g, rs))| {
                let curves: Vec<_> = rs
                    .iter()
                    .map(|r| r.series("eval", &metric))
                    .filter(|c| c.len() > 1)
                    .collect();
                (!curves.is_empty()).then(|| Line {
                    label: g.clone(),
                    colour: i,
                    main: mean_curve(&curves),
                    faint: curves,
                })
            })
            .collect();
        if !lines.is_empty() {
            let stem = out.join(format!("{stem_base}_curve"));
            let t = format!("{title}: dev {metric} after each epoch");
            charts::line_chart(&stem, &t, "epoch", y_label(&metric), &lines)?;
            embed(md, charts_written, &stem, &t);
        }

        let modes: Vec<&str> = ["finetune", "probe"]
            .into_iter()
            .filter(|m| {
                grouped
                    .iter()
                    .any(|(g, _)| g.contains(&format!("mode={m}")))
            })
            .collect();
        let group = |init: &str, mode: Option<&str>| match mode {
            Some(m) => format!("init={init},mode={m}"),
            None => format!("init={init}"),
        };
        let mode_list: Vec<Option<&str>> = if modes.is_empty() {
            vec![None]
        } else {
            modes.iter().map(|m| Some(*m)).collect()
        };
        // With a grid of learning rates, each init × mode is compared at the rate chosen on
        // the selection split of train.
        let mut pick = |init: &str, mode: Option<&str>| {
            let prefix = group(init, mode);
            selection::table_rows(&mut rates, &title, &grouped, &prefix, &metric);
            match selection::choose(&grouped, &prefix, &metric) {
                Choice::Unselectable => {
                    unselectable.push(format!("{title} ({prefix})"));
                    None
                }
                Choice::Incomplete => {
                    incomplete.push(format!("{title} ({prefix})"));
                    None
                }
                c => c.group().map(String::from),
            }
        };
        let mut chosen = std::collections::BTreeMap::new();
        for mode in &mode_list {
            for init in ["pretrained", "scratch"] {
                chosen.insert((init, *mode), pick(init, *mode));
            }
        }
        let at = |init: &'static str, mode: Option<&str>| {
            chosen.get(&(init, mode)).cloned().flatten().map(|g| {
                (
                    values(&grouped, &g, &metric),
                    selection::rate(&g).to_string(),
                )
            })
        };
        let label = |mode: &str, ra: &str, rb: &str| {
            if ra == "-" && rb == "-" {
                mode.to_string()
            } else {
                format!("{mode} (lr {ra} / {rb})")
            }
        };
        for mode in &mode_list {
            if let (Some((a, ra)), Some((b, rb))) = (at("pretrained", *mode), at("scratch", *mode))
            {
                if let Some(c) = compare(&a, &b) {
                    let m = label(mode.unwrap_or("embeddings"), &ra, &rb);
                    pre_vs_scratch.push(format!("| {title} | {m} | {metric} | {c} |"));
                }
            }
        }
        for init in ["pretrained", "scratch"] {
            if let (Some((a, ra)), Some((b, rb))) =
                (at(init, Some("finetune")), at(init, Some("probe")))
            {
                if let Some(c) = compare(&a, &b) {
                    let i = label(init, &ra, &rb);
                    probe_vs_ft.push(format!("| {title} | {i} | {metric} | {c} |"));
                }
            }
        }
    }
    if !rates.is_empty() {
        let _ = writeln!(md, "### Learning rate chosen on the selection split\n\nEach init × mode is compared below at the rate with the best mean score on the split of train held out for it (`select_fraction`); dev is not used to choose.\n\n| task | init | mode | lr | selection | dev | |\n|---|---|---|---|---|---|---|\n{rates}");
    }
    if !unselectable.is_empty() {
        let _ = writeln!(md, "Not compared: {} — a grid of learning rates without a selection split (`select_fraction`); choosing the rate on dev would flatter every side.\n", unselectable.join(", "));
    }
    if !incomplete.is_empty() {
        let _ = writeln!(
            md,
            "Not compared yet: {} — a rate of the grid has a run that has not finished.\n",
            incomplete.join(", ")
        );
    }
    if !pre_vs_scratch.is_empty() {
        let _ = writeln!(md, "### Pretrained versus scratch\n\n`spread`: the larger of the two seed std's; a difference counts only beyond it.\n\n| task | mode | metric | pretrained | scratch | difference | spread | verdict |\n|---|---|---|---|---|---|---|---|");
        for r in &pre_vs_scratch {
            let _ = writeln!(md, "{r}");
        }
        md.push('\n');
    }
    if !probe_vs_ft.is_empty() {
        let _ = writeln!(md, "### Fine-tuning versus probing a frozen encoder\n\n| task | init | metric | finetune | probe | difference | spread | verdict |\n|---|---|---|---|---|---|---|---|");
        for r in &probe_vs_ft {
            let _ = writeln!(md, "{r}");
        }
        md.push('\n');
    }
    Ok(())
}
