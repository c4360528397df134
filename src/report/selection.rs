//! Choosing a downstream entry's learning rate per `init × mode` on the selection split of
//! train (`select_fraction`), as BERT chose it per task: the comparison of pretrained and
//! scratch then uses each init at its own best rate, and dev is never looked at to choose.

use super::mean_std_cell;
use super::runs::{mean_std, Run};
use std::fmt::Write as _;

/// What the grid of one `init × mode` gave: the group to compare, or why there is none.
pub enum Choice {
    /// One rate only (no grid): its group.
    Single(String),
    /// The group whose runs score best on the selection split, mean over seeds.
    Chosen(String),
    /// A grid without selection scores: choosing on dev would flatter both sides.
    Unselectable,
    /// A run of the grid has not finished: no choice until every rate is scored.
    Incomplete,
    /// No runs of this `init × mode`.
    Absent,
}

impl Choice {
    pub fn group(&self) -> Option<&str> {
        match self {
            Choice::Single(g) | Choice::Chosen(g) => Some(g),
            Choice::Unselectable | Choice::Incomplete | Choice::Absent => None,
        }
    }
}

/// The groups of `prefix` (`init=pretrained,mode=finetune`): itself, or its `lr=` variants.
fn candidates<'a>(
    grouped: &'a [(String, Vec<&'a Run>)],
    prefix: &str,
) -> Vec<&'a (String, Vec<&'a Run>)> {
    let with_lr = format!("{prefix},lr=");
    grouped
        .iter()
        .filter(|(g, _)| g == prefix || g.starts_with(&with_lr))
        .collect()
}

fn mean_of(runs: &[&Run], split: &str, metric: &str) -> Option<f64> {
    let xs: Vec<f64> = runs.iter().filter_map(|r| r.last(split, metric)).collect();
    (!xs.is_empty()).then(|| mean_std(&xs).0)
}

/// The group to compare for `prefix`: every headline metric is higher-better (accuracy,
/// F1, MCC, correlations), so the highest mean selection score wins. A tie (every rate at
/// the majority class, MCC 0) goes to the lowest mean selection loss, which still tells the
/// rates apart; only then to the largest rate (the last in `runs::read` order).
pub fn choose(grouped: &[(String, Vec<&Run>)], prefix: &str, metric: &str) -> Choice {
    let cands = candidates(grouped, prefix);
    match cands.as_slice() {
        [] => Choice::Absent,
        [(g, _)] => Choice::Single(g.clone()),
        _ if cands.iter().any(|(_, rs)| rs.iter().any(|r| !r.finished)) => Choice::Incomplete,
        _ => {
            let scored: Option<Vec<(f64, f64, &String)>> = cands
                .iter()
                .map(|(g, rs)| {
                    let loss = mean_of(rs, "select", "loss").unwrap_or(f64::INFINITY);
                    mean_of(rs, "select", metric).map(|m| (m, loss, g))
                })
                .collect();
            match scored {
                None => Choice::Unselectable,
                Some(s) => s
                    .into_iter()
                    .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)))
                    .map_or(Choice::Absent, |(_, _, g)| Choice::Chosen(g.clone())),
            }
        }
    }
}

/// The `lr=` value of a group, as its folder names it (`-` without a grid).
pub fn rate(group: &str) -> &str {
    group
        .split(',')
        .find_map(|p| p.strip_prefix("lr="))
        .unwrap_or("-")
}

/// Rows `| title | init | mode | lr | selection | dev | |` for every rate of a grid with a
/// selection split (nothing for entries without a grid).
pub fn table_rows(
    rows: &mut String,
    title: &str,
    grouped: &[(String, Vec<&Run>)],
    prefix: &str,
    metric: &str,
) {
    let cands = candidates(grouped, prefix);
    if cands.len() < 2 {
        return;
    }
    let chosen = choose(grouped, prefix, metric);
    let (init, mode) = prefix.split_once(',').unwrap_or((prefix, ""));
    for (g, rs) in cands {
        let cell = |split: &str| {
            let xs: Vec<f64> = rs.iter().filter_map(|r| r.last(split, metric)).collect();
            mean_std_cell(&xs, 3)
        };
        let mark = if chosen.group() == Some(g.as_str()) {
            "chosen"
        } else {
            ""
        };
        let _ = writeln!(
            rows,
            "| {title} | {} | {} | {} | {} | {} | {mark} |",
            init.trim_start_matches("init="),
            mode.trim_start_matches("mode="),
            rate(g),
            cell("select"),
            cell("eval"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::{groups, Row};

    /// A finished run of `group` with its last dev and selection accuracy.
    fn run(group: &str, seed: u64, dev: f64, select: Option<f64>) -> Run {
        scored(group, seed, dev, select.map(|a| (a, 0.5)))
    }

    /// A finished run with its last dev accuracy and selection (accuracy, loss).
    fn scored(group: &str, seed: u64, dev: f64, select: Option<(f64, f64)>) -> Run {
        let row = |split: &str, values: &[(&str, f64)]| Row {
            step: 10,
            split: split.into(),
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let mut rows = vec![row("eval", &[("accuracy", dev)])];
        rows.extend(select.map(|(a, l)| row("select", &[("accuracy", a), ("loss", l)])));
        Run {
            variant: format!("{group},seed={seed}"),
            group: group.into(),
            dir: Default::default(),
            rows,
            finished: true,
            eval_fingerprint: None,
        }
    }

    #[test]
    fn the_rate_is_chosen_on_the_selection_split_never_on_dev() {
        let p = "init=pretrained,mode=finetune";
        // 1e-3 is best on dev, 1e-4 on the selection split: selection wins.
        let runs = [
            run(&format!("{p},lr=1e-4"), 1, 0.70, Some(0.80)),
            run(&format!("{p},lr=1e-4"), 2, 0.72, Some(0.78)),
            run(&format!("{p},lr=1e-3"), 1, 0.90, Some(0.60)),
            run(&format!("{p},lr=1e-3"), 2, 0.88, Some(0.62)),
            run("init=scratch,mode=finetune", 1, 0.5, None),
        ];
        let g = groups(&runs);
        let c = choose(&g, p, "accuracy");
        assert_eq!(c.group(), Some(&*format!("{p},lr=1e-4")));
        assert_eq!(rate(c.group().unwrap()), "1e-4");
        // One rate: nothing to choose; none at all: absent.
        let s = choose(&g, "init=scratch,mode=finetune", "accuracy");
        assert!(matches!(s, Choice::Single(_)));
        assert!(matches!(
            choose(&g, "init=scratch,mode=probe", "accuracy"),
            Choice::Absent
        ));
        let mut md = String::new();
        table_rows(&mut md, "rte", &g, p, "accuracy");
        assert_eq!(md.lines().count(), 2);
        assert!(
            md.contains("| 1e-4 | 0.790 ± 0.014 | 0.710 ± 0.014 | chosen |"),
            "{md}"
        );
        // A grid without selection scores is not chosen on dev.
        let blind = [
            run(&format!("{p},lr=1e-4"), 1, 0.70, None),
            run(&format!("{p},lr=1e-3"), 1, 0.90, None),
        ];
        assert!(matches!(
            choose(&groups(&blind), p, "accuracy"),
            Choice::Unselectable
        ));
        // A rate still training: no choice yet (not one among the finished rates only).
        let mut running = runs.to_vec();
        running[2].finished = false;
        assert!(matches!(
            choose(&groups(&running), p, "accuracy"),
            Choice::Incomplete
        ));
    }

    #[test]
    fn a_tie_on_the_score_goes_to_the_lower_selection_loss() {
        let p = "init=scratch,mode=finetune";
        // Both rates at the majority class (same accuracy); 1e-4 has the lower loss, though
        // 3e-4 is the larger rate.
        let runs = [
            scored(&format!("{p},lr=1e-4"), 1, 0.69, Some((0.69, 0.60))),
            scored(&format!("{p},lr=3e-4"), 1, 0.69, Some((0.69, 0.64))),
        ];
        let c = choose(&groups(&runs), p, "accuracy");
        assert_eq!(c.group(), Some(&*format!("{p},lr=1e-4")));
    }
}
