//! The dev predictions of a downstream run, in the formats the benchmarks' own tools read:
//! GLUE's submission TSV (`index\tprediction`, one row per example in file order, labels
//! written as the task's files write them) and SQuAD's predictions JSON (`{question id:
//! answer text}`, what the official v1.1 `evaluate-v1.1.py` reads). Every downstream run
//! leaves its file in its run directory; `pretext finetune --predict FILE` also copies it out.

use std::path::{Path, PathBuf};

/// What a run predicted for its dev split.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// One label or score per dev example, in file order.
    Rows(Vec<String>),
    /// `(question id, answer text)` per dev question.
    Answers(Vec<(String, String)>),
}

impl Predictions {
    /// The file name in a run directory (`predictions.tsv` or `predictions.json`).
    pub fn file_name(&self) -> &'static str {
        match self {
            Predictions::Rows(_) => "predictions.tsv",
            Predictions::Answers(_) => "predictions.json",
        }
    }

    pub fn render(&self) -> String {
        match self {
            Predictions::Rows(rows) => {
                let mut out = String::from("index\tprediction\n");
                for (i, r) in rows.iter().enumerate() {
                    out.push_str(&format!("{i}\t{r}\n"));
                }
                out
            }
            Predictions::Answers(answers) => {
                let map: serde_json::Map<String, serde_json::Value> = answers
                    .iter()
                    .map(|(id, text)| (id.clone(), serde_json::Value::from(text.as_str())))
                    .collect();
                serde_json::to_string_pretty(&map).expect("a JSON object serialises") + "\n"
            }
        }
    }

    /// Writes the file into `dir` atomically; returns its path.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(self.file_name());
        crate::rundir::write_atomically(&path, self.render().as_bytes())?;
        Ok(path)
    }
}

/// A class id as the task's files write it (`entailment`, `1`, …).
pub fn label_text(labels: Option<super::glue::LabelSet>, class: usize) -> String {
    match labels {
        Some(super::glue::LabelSet::Words(words)) if class < words.len() => words[class].into(),
        _ => class.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::glue::LabelSet;

    #[test]
    fn formats_are_glue_tsv_and_squad_json() {
        let rows = Predictions::Rows(vec!["entailment".into(), "not_entailment".into()]);
        assert_eq!(
            rows.render(),
            "index\tprediction\n0\tentailment\n1\tnot_entailment\n"
        );
        let answers = Predictions::Answers(vec![
            ("q2".into(), "the \"Normans\"".into()),
            ("q1".into(), "10th century".into()),
        ]);
        let back: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&answers.render()).unwrap();
        assert_eq!(back["q2"], "the \"Normans\"");
        assert_eq!(back["q1"], "10th century");
        assert_eq!(back.len(), 2);
        let words = LabelSet::Words(&["entailment", "not_entailment"]);
        assert_eq!(label_text(Some(words), 1), "not_entailment");
        assert_eq!(label_text(Some(LabelSet::Score(0.0, 5.0)), 1), "1");
    }
}
