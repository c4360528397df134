//! The cross table of a pretraining study: every variant asked every question — masked-LM
//! accuracy, NSP accuracy, SOP accuracy on the shared held-out set, and the STS-B Spearman of
//! its mean-pooled sentence embeddings — whatever it was trained with. A pair task the
//! variant trained is scored through its own head; one it did not, through the linear probe
//! of `train::probe`. ALBERT's case for SOP over NSP is exactly this table (Lan et al. 2019,
//! Table 5).

use super::mean_std_cell;
use super::runs::Run;
use std::fmt::Write as _;
use std::path::Path;

/// One column: the label, the head's key and the probe's key (if a probe can stand in).
const COLUMNS: [(&str, &str, Option<&str>); 3] = [
    ("MLM accuracy", "mlm/accuracy", None),
    ("NSP accuracy", "nsp/accuracy", Some("probe/nsp/accuracy")),
    ("SOP accuracy", "sop/accuracy", Some("probe/sop/accuracy")),
];

/// Dev Spearman of the `sts-embed` downstream runs from the pretrained encoder of `run`.
fn sts_spearman(run: &Path) -> Vec<f64> {
    let mut out = Vec::new();
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
                if let Some(x) = v["dev"]["spearman"].as_f64() {
                    out.push(x);
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
    let sts: Vec<Vec<f64>> = grouped
        .iter()
        .map(|(_, rs)| rs.iter().flat_map(|r| sts_spearman(&r.dir)).collect())
        .collect();
    let with_sts = sts.iter().any(|v| !v.is_empty());
    let _ = writeln!(
        md,
        "## Every variant on every question (cross table)\n\n\
         Held-out accuracy on the shared evaluation set, mean ± std over seeds. *head*: the \
         variant trained this task and answers through its own head; *probe*: it did not, \
         and a logistic-regression probe on its frozen pooled [CLS] output (fitted on {} \
         pairs of the training split) answers instead.{}\n",
        crate::train::probe::PROBE_PAIRS,
        if with_sts {
            " STS-B: dev Spearman of mean-pooled embeddings of the pretrained encoder."
        } else {
            ""
        }
    );
    let mut head = vec!["variant", "n"];
    head.extend(COLUMNS.iter().map(|c| c.0));
    if with_sts {
        head.push("STS-B Spearman");
    }
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    for ((g, rs), sts) in grouped.iter().zip(&sts) {
        let mut cells = vec![g.clone(), rs.len().to_string()];
        for (_, key, probe) in COLUMNS {
            let by_head: Vec<f64> = rs.iter().filter_map(|r| r.last("eval", key)).collect();
            let by_probe: Vec<f64> = probe
                .map(|p| rs.iter().filter_map(|r| r.last("eval", p)).collect())
                .unwrap_or_default();
            cells.push(if !by_head.is_empty() {
                format!("{} (head)", mean_std_cell(&by_head, 3))
            } else if !by_probe.is_empty() {
                format!("{} (probe)", mean_std_cell(&by_probe, 3))
            } else {
                "–".into()
            });
        }
        if with_sts {
            cells.push(mean_std_cell(sts, 3));
        }
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
    true
}
