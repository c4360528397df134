//! The downstream tasks by name: what each reads, which head it trains and which metric
//! ranks it. The one list of tasks; `pretext list` prints it.

use super::glue::{self, Layout};

/// What a task's head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A class of the pooled sequence (cross-entropy).
    Classify { classes: usize },
    /// A real score of the pooled sequence (mean squared error), e.g. STS-B.
    Regress,
    /// Answer start and end positions over the context tokens (SQuAD).
    Span,
    /// No training: cosine similarity of two sentence embeddings against a gold score.
    Embed,
    /// No training, and no fine-tuning machinery: the pretraining run's MLM head scores the
    /// data (CrowS-Pairs, run by `predict::downstream`).
    MlmProbe,
}

#[derive(Debug, Clone, Copy)]
pub struct Task {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: Kind,
    /// The dev metric the report ranks by (the GLUE / SQuAD headline number).
    pub metric: &'static str,
    /// Tab-separated layout for GLUE tasks.
    pub layout: Option<Layout>,
    /// File names of the dev split inside the task folder, tried in order.
    pub dev_files: &'static [&'static str],
}

const DEV: &[&str] = &["dev.tsv"];

pub fn all() -> Vec<Task> {
    let glue = |name, summary, classes: usize, metric| Task {
        name,
        summary,
        kind: if classes == 0 {
            Kind::Regress
        } else {
            Kind::Classify { classes }
        },
        metric,
        layout: glue::layout(name),
        dev_files: DEV,
    };
    vec![
        glue(
            "sst2",
            "GLUE SST-2: sentence sentiment, accuracy",
            2,
            "accuracy",
        ),
        glue(
            "cola",
            "GLUE CoLA: grammatical acceptability, Matthews correlation",
            2,
            "mcc",
        ),
        glue(
            "mrpc",
            "GLUE MRPC: paraphrase pairs, accuracy and F1",
            2,
            "accuracy",
        ),
        glue("rte", "GLUE RTE: entailment pairs, accuracy", 2, "accuracy"),
        glue(
            "wnli",
            "GLUE WNLI: Winograd entailment pairs, accuracy",
            2,
            "accuracy",
        ),
        glue(
            "qnli",
            "GLUE QNLI: question/sentence entailment, accuracy",
            2,
            "accuracy",
        ),
        Task {
            dev_files: &["dev_matched.tsv", "dev.tsv"],
            ..glue(
                "mnli",
                "GLUE MNLI: 3-way entailment (matched dev), accuracy",
                3,
                "accuracy",
            )
        },
        glue(
            "stsb",
            "GLUE STS-B: pair similarity regression (0–5), Pearson and Spearman",
            0,
            "pearson",
        ),
        Task {
            name: "squad",
            summary: "SQuAD v1.1/v2.0 answerable questions: span extraction, exact match and F1",
            kind: Kind::Span,
            metric: "f1",
            layout: None,
            dev_files: &[],
        },
        Task {
            name: "sts-embed",
            summary: "STS-B dev without training: cosine of sentence embeddings vs gold (Spearman); alignment, uniformity",
            kind: Kind::Embed,
            metric: "spearman",
            layout: glue::layout("stsb"),
            dev_files: DEV,
        },
        Task {
            name: "crows-pairs",
            summary:
                "CrowS-Pairs without training: the MLM's stereotype score, % (50 = no preference)",
            kind: Kind::MlmProbe,
            metric: "score",
            layout: None,
            dev_files: &[],
        },
    ]
}

pub fn find(name: &str) -> Option<Task> {
    all().into_iter().find(|t| t.name == name)
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|t| t.name).collect()
}

/// The rules of the `[[finetune]]` entries that depend on their task — the task is
/// registered, its sequences fit the model (the MLM probe reads no `max_seq_len`: pairs
/// longer than the model takes are left out), a span task leaves room beside its question, a
/// task that trains nothing has no learning rate to choose — as `(key, message)`. The
/// entries' schema and ranges are `config`'s; `crate::experiment` runs both.
pub fn check_entries(
    entries: &[crate::config::FinetuneSpec],
    model: &crate::config::ModelConfig,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, f) in entries.iter().enumerate() {
        let mut bad = |k: &str, m: String| out.push((format!("finetune.{i}.{k}"), m));
        let Some(task) = find(&f.task) else {
            bad(
                "task",
                format!(
                    "unknown task `{}`; registered: {}",
                    f.task,
                    names().join(", ")
                ),
            );
            continue;
        };
        if f.max_seq_len > model.max_positions && task.kind != Kind::MlmProbe {
            bad(
                "max_seq_len",
                format!(
                    "{} needs at most model.max_positions = {}, got {}",
                    task.name, model.max_positions, f.max_seq_len
                ),
            );
        }
        if task.kind != Kind::MlmProbe && f.max_seq_len < 5 {
            bad(
                "max_seq_len",
                format!(
                    "expected at least 5 ([CLS], the [SEP]s and room for text), got {}",
                    f.max_seq_len
                ),
            );
        }
        if task.kind == Kind::Span && f.max_seq_len < f.max_query_len.saturating_add(8) {
            bad(
                "max_seq_len",
                format!(
                    "expected room for [CLS], [SEP]s and text beyond max_query_len ({}), got {}",
                    f.max_query_len, f.max_seq_len
                ),
            );
        }
        if matches!(task.kind, Kind::Embed | Kind::MlmProbe) {
            for (k, refused) in [
                ("select_fraction", f.select_fraction > 0.0),
                ("lr", f.lr.len() > 1),
                ("probe_lr", f.probe_lr.len() > 1),
            ] {
                if refused {
                    bad(
                        k,
                        format!(
                            "{} trains nothing, so there is no learning rate to choose; remove it",
                            f.task
                        ),
                    );
                }
            }
        }
    }
    out
}
