//! The cross table of a pretraining study: every variant asked every question — masked-LM
//! accuracy, NSP accuracy, SOP accuracy on the shared held-out set, and the STS-B Spearman of
//! its mean-pooled sentence embeddings — whatever it was trained with. A pair task the
//! variant trained is scored through its own head; one it did not, through the linear probe
//! of `train::probe` (and, where it trained the other pair task, that task's head). ALBERT's case for SOP over NSP is exactly this table (Lan et al. 2019,
//! Table 5).

use super::mean_std_cell;
use super::runs::Run;
use std::fmt::Write as _;
use std::path::Path;

/// One column of the pair questions.
struct Column {
    label: &'static str,
    /// The key of the variant's own head.
    head: &'static str,
    /// What can stand in for a head the variant did not train: the probe's key and the other
    /// pair task's head's key (`transfer`).
    stand_ins: Option<(&'static str, &'static str)>,
}

const COLUMNS: [Column; 3] = [
    Column {
        label: "MLM accuracy",
        head: "mlm/accuracy",
        stand_ins: None,
    },
    Column {
        label: "NSP accuracy",
        head: "nsp/accuracy",
        stand_ins: Some(("probe/nsp/accuracy", "transfer/nsp/accuracy")),
    },
    Column {
        label: "SOP accuracy",
        head: "sop/accuracy",
        stand_ins: Some(("probe/sop/accuracy", "transfer/sop/accuracy")),
    },
];

/// The `sts-embed` columns: the label and the key of the downstream summary's `dev` scores
/// (alignment and uniformity: lower is better; SimCSE's Figure 2).
const STS: [(&str, &str); 3] = [
    ("STS-B Spearman", "spearman"),
    ("STS-B alignment ↓", "alignment"),
    ("STS-B uniformity ↓", "uniformity"),
];

/// Per [`STS`] column, the dev scores of the `sts-embed` downstream runs from the pretrained
/// encoder of `run`.
fn sts_scores(run: &Path) -> [Vec<f64>; 3] {
    let mut out: [Vec<f64>; 3] = Default::default();
    let Ok(entries) = std::fs::read_dir(run.join("finetune")) else {
        return out;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for entry in entries {
        let Ok(jobs) = std::fs::read_dir(&entry) else {
            continue;
        };
        let mut jobs: Vec<_> = jobs.filter_map(Result::ok).map(|e| e.path()).collect();
        jobs.sort();
        for job in jobs {
            let Ok(text) = std::fs::read_to_string(crate::rundir::summary_path(&job)) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["task"] == "sts-embed" && v["init"] == "pretrained" {
                for (col, (_, key)) in out.iter_mut().zip(STS) {
                    col.extend(v["dev"][key].as_f64());
                }
            }
        }
    }
    out
}

/// Writes the section when some run has pair metrics or probes; returns whether it did.
pub fn write(md: &mut String, grouped: &[(String, Vec<&Run>)]) -> bool {
    let has = |key: &str| {
        grouped
            .iter()
            .any(|(_, rs)| rs.iter().any(|r| r.last("eval", key).is_some()))
    };
    if !has("probe/nsp/accuracy") && !has("probe/sop/accuracy") {
        return false;
    }
    // Per group, per STS column, the values of all its runs.
    let sts: Vec<[Vec<f64>; 3]> = grouped
        .iter()
        .map(|(_, rs)| {
            let mut cols: [Vec<f64>; 3] = Default::default();
            for r in rs.iter() {
                for (col, v) in cols.iter_mut().zip(sts_scores(&r.dir)) {
                    col.extend(v);
                }
            }
            cols
        })
        .collect();
    let with: Vec<bool> = (0..STS.len())
        .map(|c| sts.iter().any(|g| !g[c].is_empty()))
        .collect();
    let with_sts = with[0];
    let with_transfer = has("transfer/nsp/accuracy") || has("transfer/sop/accuracy");
    let _ = writeln!(
        md,
        "## Every variant on every question (cross table)\n\n\
         Held-out accuracy on the shared evaluation set, mean ± std over seeds. *head*: the \
         variant trained this task and answers through its own head; *probe*: it did not, \
         and a logistic-regression probe on its frozen pooled [CLS] output (fitted on {} \
         pairs of the training split) answers instead.{}{}\n",
        crate::train::probe::PROBE_PAIRS,
        if with_transfer {
            " *other head*: the variant's head for the other pair task, asked this task's \
             pairs as they are (both tasks label a pair 0 when B follows A) — how ALBERT's \
             Table 5 scores its NSP model on SOP and its SOP model on NSP."
        } else {
            ""
        },
        if with_sts {
            " STS-B: dev Spearman of the cosine of the pretrained encoder's sentence \
             embeddings against the gold scores, and their alignment (mean squared distance \
             of paraphrase pairs, gold ≥ 4) and uniformity (log mean exp(−2·distance²) over \
             all sentences), Wang & Isola (2020); lower is better for both."
        } else {
            ""
        }
    );
    let mut head = vec!["variant", "n"];
    head.extend(COLUMNS.iter().map(|c| c.label));
    head.extend(STS.iter().zip(&with).filter(|(_, w)| **w).map(|(c, _)| c.0));
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    for ((g, rs), sts) in grouped.iter().zip(&sts) {
        let mut cells = vec![g.clone(), rs.len().to_string()];
        for Column {
            head: key,
            stand_ins,
            ..
        } in COLUMNS
        {
            let by_head: Vec<f64> = rs.iter().filter_map(|r| r.last("eval", key)).collect();
            let values = |key: Option<&str>| -> Vec<f64> {
                key.map(|k| rs.iter().filter_map(|r| r.last("eval", k)).collect())
                    .unwrap_or_default()
            };
            let by_probe = values(stand_ins.map(|p| p.0));
            let by_transfer = values(stand_ins.map(|p| p.1));
            cells.push(if !by_head.is_empty() {
                format!("{} (head)", mean_std_cell(&by_head, 3))
            } else if !by_probe.is_empty() {
                let mut cell = format!("{} (probe)", mean_std_cell(&by_probe, 3));
                if !by_transfer.is_empty() {
                    let _ = write!(cell, "; {} (other head)", mean_std_cell(&by_transfer, 3));
                }
                cell
            } else {
                "–".into()
            });
        }
        for (values, _) in sts.iter().zip(&with).filter(|(_, w)| **w) {
            cells.push(mean_std_cell(values, 3));
        }
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
    true
}
