//! Reading run directories back: metrics.jsonl rows and summaries, grouped across seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}:{line}: not a metrics row: {reason}")]
    BadRow {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no run directories with metrics.jsonl here; give runs/<experiment>")]
    NoRuns { path: PathBuf },
    #[error("{path}: cannot draw the chart: {reason}")]
    Chart { path: PathBuf, reason: String },
}

#[derive(Debug, Clone)]
pub struct Row {
    pub step: u64,
    pub split: String,
    pub values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub variant: String,
    /// The variant without its seed, so seeds of one setting are compared together.
    pub group: String,
    pub dir: PathBuf,
    pub rows: Vec<Row>,
    pub finished: bool,
    /// The held-out set's fingerprint from `summary.json` (runs from before it have none).
    pub eval_fingerprint: Option<String>,
}

/// The variant name without its `seed=` part (`base` when nothing else is left).
pub fn group_of(variant: &str) -> String {
    let g: Vec<&str> = variant
        .split(',')
        .filter(|p| !p.starts_with("seed="))
        .collect();
    if g.is_empty() {
        "base".into()
    } else {
        g.join(",")
    }
}

impl Run {
    /// `(step, value)` of one scalar of one split, in step order.
    pub fn series(&self, split: &str, key: &str) -> Vec<(u64, f64)> {
        self.rows
            .iter()
            .filter(|r| r.split == split)
            .filter_map(|r| r.values.get(key).map(|v| (r.step, *v)))
            .collect()
    }

    pub fn last(&self, split: &str, key: &str) -> Option<f64> {
        self.series(split, key).last().map(|x| x.1)
    }
}

pub fn read(exp_dir: &Path) -> Result<Vec<Run>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| ReportError::Io {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    let mut runs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(exp_dir)
        .map_err(io(exp_dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort_by(|a, b| variant_order(a, b));
    for dir in entries {
        let metrics = dir.join("metrics.jsonl");
        if !metrics.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&metrics).map_err(io(&metrics))?;
        // A last line without its newline is a row whose write a kill cut short: the run
        // redoes it on resume (the log is cut back to the checkpoint), so it is left out
        // here rather than refusing the whole report.
        let whole = match text.ends_with('\n') {
            true => &text[..],
            false => &text[..text.rfind('\n').map_or(0, |i| i + 1)],
        };
        let mut rows = Vec::new();
        for (i, line) in whole
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |reason: String| ReportError::BadRow {
                path: metrics.clone(),
                line: i + 1,
                reason,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let step = v["step"]
                .as_u64()
                .ok_or_else(|| bad("no integer `step`".into()))?;
            let split = v["split"]
                .as_str()
                .ok_or_else(|| bad("no `split`".into()))?
                .to_string();
            let values = v
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, x)| x.as_f64().filter(|_| k != "step").map(|x| (k.clone(), x)))
                .collect();
            rows.push(Row {
                step,
                split,
                values,
            });
        }
        let variant = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let eval_fingerprint = crate::rundir::recorded_eval_fingerprint(&dir);
        runs.push(Run {
            group: group_of(&variant),
            finished: crate::rundir::finished(&dir),
            eval_fingerprint,
            variant,
            dir,
            rows,
        });
    }
    if runs.is_empty() {
        return Err(ReportError::NoRuns {
            path: exp_dir.into(),
        });
    }
    Ok(runs)
}

/// Groups in first-seen order with their runs; the order fixes each group's colour.
pub fn groups(runs: &[Run]) -> Vec<(String, Vec<&Run>)> {
    let mut out: Vec<(String, Vec<&Run>)> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, v)) => v.push(r),
            None => out.push((r.group.clone(), vec![r])),
        }
    }
    out
}

/// The order runs are read and reported in: by folder name, except that the values of
/// `key=value` parts compare as numbers where both are (`lr=3e-5` before `lr=1e-4` before
/// `lr=3e-4`; `seed=9` before `seed=10`), as a reader scans a grid.
fn variant_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let name = |p: &Path| {
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (x, y) = (name(a), name(b));
    for (pa, pb) in x.split(',').zip(y.split(',')) {
        let o = match (pa.split_once('='), pb.split_once('=')) {
            (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                match (va.parse::<f64>(), vb.parse::<f64>()) {
                    (Ok(u), Ok(v)) => u.total_cmp(&v),
                    _ => va.cmp(vb),
                }
            }
            _ => pa.cmp(pb),
        };
        if o.is_ne() {
            return o;
        }
    }
    x.cmp(&y)
}

/// Mean and sample standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n.max(1.0);
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The mean over runs at each step that every run logged.
pub fn mean_curve(curves: &[Vec<(u64, f64)>]) -> Vec<(u64, f64)> {
    let Some(first) = curves.first() else {
        return vec![];
    };
    first
        .iter()
        .filter_map(|&(step, _)| {
            let vals: Vec<f64> = curves
                .iter()
                .filter_map(|c| c.iter().find(|(s, _)| *s == step).map(|x| x.1))
                .collect();
            (vals.len() == curves.len())
                .then(|| (step, vals.iter().sum::<f64>() / vals.len() as f64))
        })
        .collect()
}

/// Exponential moving average, as TensorBoard's smoothing slider does.
pub fn smooth(curve: &[(u64, f64)], weight: f64) -> Vec<(u64, f64)> {
    let mut last = None;
    curve
        .iter()
        .map(|&(s, v)| {
            let y = match last {
                None => v,
                Some(l) => weight * l + (1.0 - weight) * v,
            };
            last = Some(y);
            (s, y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::variant_order;
    use std::path::PathBuf;

    #[test]
    fn grids_are_read_in_numeric_order() {
        let mut names: Vec<PathBuf> = [
            "init=scratch,lr=3e-4,seed=1",
            "init=pretrained,lr=1e-3,seed=10",
            "init=pretrained,lr=3e-5,seed=2",
            "init=pretrained,lr=1e-3,seed=9",
            "init=pretrained,lr=1e-4,seed=1",
            "base",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        names.sort_by(|a, b| variant_order(a, b));
        let got: Vec<_> = names.iter().map(|p| p.to_string_lossy()).collect();
        assert_eq!(
            got,
            [
                "base",
                "init=pretrained,lr=3e-5,seed=2",
                "init=pretrained,lr=1e-4,seed=1",
                "init=pretrained,lr=1e-3,seed=9",
                "init=pretrained,lr=1e-3,seed=10",
                "init=scratch,lr=3e-4,seed=1",
            ]
        );
    }
}
