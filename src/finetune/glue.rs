//! Readers for the GLUE tsv layouts. GLUE files are tab-separated with no quoting (HF reads
//! them with `quoting=QUOTE_NONE`), so a field may hold any character except tab and newline.
//! Every malformed row is an error naming the file and line, except in the tasks whose
//! official release has known broken rows (MNLI, QNLI), where such rows are counted and
//! skipped the way the reference loaders skip them.

use std::path::{Path, PathBuf};

/// A downstream example: one or two texts and a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub a: String,
    pub b: Option<String>,
    pub label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    Class(usize),
    Score(f32),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: PathBuf, reason: String },
    #[error("{file}:{line}: {message}")]
    Row {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{file}: no examples")]
    Empty { file: PathBuf },
}

/// How a task's labels are written.
#[derive(Debug, Clone, Copy)]
pub enum LabelSet {
    /// The label column holds one of these words; the class id is the position.
    Words(&'static [&'static str]),
    /// A real-valued score in this closed range (STS-B: 0–5).
    Score(f32, f32),
}

/// Where a GLUE task keeps its columns.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// First field of the header line, if the file may start with one (checked after a BOM).
    pub header: Option<&'static str>,
    /// Fields a row must have (at least).
    pub fields: usize,
    pub a: usize,
    pub b: Option<usize>,
    /// Column of the label; `usize::MAX` means the last one.
    pub label: usize,
    pub labels: LabelSet,
    /// The release has known malformed rows: count and skip them instead of failing.
    pub skip_bad_rows: bool,
}

const BINARY: LabelSet = LabelSet::Words(&["0", "1"]);
const ENTAILMENT: LabelSet = LabelSet::Words(&["entailment", "not_entailment"]);

/// The layouts of the GLUE release (MRPC's `Quality` header appears only in some copies).
pub fn layout(task: &str) -> Option<Layout> {
    let l = |header, fields, a, b, label, labels| Layout {
        header,
        fields,
        a,
        b,
        label,
        labels,
        skip_bad_rows: false,
    };
    Some(match task {
        "sst2" => l(Some("sentence"), 2, 0, None, 1, BINARY),
        "cola" => l(None, 4, 3, None, 1, BINARY),
        "mrpc" => l(Some("Quality"), 5, 3, Some(4), 0, BINARY),
        "rte" => l(Some("index"), 4, 1, Some(2), 3, ENTAILMENT),
        "wnli" => l(Some("index"), 4, 1, Some(2), 3, BINARY),
        "stsb" => l(Some("index"), 10, 7, Some(8), 9, LabelSet::Score(0.0, 5.0)),
        "qnli" => Layout {
            skip_bad_rows: true,
            ..l(Some("index"), 4, 1, Some(2), 3, ENTAILMENT)
        },
        "mnli" => Layout {
            skip_bad_rows: true,
            ..l(
                Some("index"),
                11,
                8,
                Some(9),
                usize::MAX,
                LabelSet::Words(&["entailment", "neutral", "contradiction"]),
            )
        },
        _ => return None,
    })
}

/// What a read produced, with the rows it skipped.
#[derive(Debug)]
pub struct Read {
    pub examples: Vec<Example>,
    pub skipped: usize,
}

pub fn read(path: &Path, layout: &Layout) -> Result<Read, ReadError> {
    let text = crate::files::read_to_string(path).map_err(|e| ReadError::Io {
        file: path.into(),
        reason: e.to_string(),
    })?;
    parse(&text, path, layout)
}

pub fn parse(text: &str, path: &Path, layout: &Layout) -> Result<Read, ReadError> {
    let mut examples = Vec::new();
    let mut skipped = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if i == 0 && layout.header.is_some_and(|h| fields[0].trim() == h) {
            continue;
        }
        match row(&fields, layout) {
            Ok(ex) => examples.push(ex),
            Err(_) if layout.skip_bad_rows => skipped += 1,
            Err(message) => {
                return Err(ReadError::Row {
                    file: path.into(),
                    line: i + 1,
                    message,
                })
            }
        }
    }
    if examples.is_empty() {
        return Err(ReadError::Empty { file: path.into() });
    }
    Ok(Read { examples, skipped })
}

fn row(fields: &[&str], l: &Layout) -> Result<Example, String> {
    if fields.len() < l.fields {
        return Err(format!(
            "{} tab-separated field(s), this layout needs {}",
            fields.len(),
            l.fields
        ));
    }
    let label_col = if l.label == usize::MAX {
        fields.len() - 1
    } else {
        l.label
    };
    let raw = fields[label_col].trim();
    let label = match l.labels {
        LabelSet::Words(words) => {
            Label::Class(words.iter().position(|w| *w == raw).ok_or_else(|| {
                format!(
                    "label `{raw}` (column {}) is not one of {}",
                    label_col + 1,
                    words.join(", ")
                )
            })?)
        }
        LabelSet::Score(lo, hi) => {
            let v: f32 = raw
                .parse()
                .map_err(|_| format!("score `{raw}` (column {}) is not a number", label_col + 1))?;
            if !(lo..=hi).contains(&v) {
                return Err(format!("score {v} is outside {lo}–{hi}"));
            }
            Label::Score(v)
        }
    };
    let text = |c: usize| -> Result<String, String> {
        let t = fields[c].trim();
        if t.is_empty() {
            Err(format!("column {} (text) is empty", c + 1))
        } else {
            Ok(t.to_string())
        }
    };
    Ok(Example {
        a: text(l.a)?,
        b: l.b.map(text).transpose()?,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_bom_and_labels() {
        let p = Path::new("dev.tsv");
        let sst = parse(
            "sentence\tlabel\nfine film \t1\nbad\t0\n",
            p,
            &layout("sst2").unwrap(),
        )
        .unwrap();
        assert_eq!(sst.examples.len(), 2);
        assert_eq!(sst.examples[0].a, "fine film");
        assert_eq!(sst.examples[0].label, Label::Class(1));
        let mrpc = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t1\t2\tA b.\tC d.\r\n";
        let m = parse(mrpc, p, &layout("mrpc").unwrap()).unwrap();
        assert_eq!(m.examples[0].b.as_deref(), Some("C d."));
        let rte = parse(
            "index\ts1\ts2\tlabel\n0\tA\tB\tnot_entailment\n",
            p,
            &layout("rte").unwrap(),
        )
        .unwrap();
        assert_eq!(rte.examples[0].label, Label::Class(1));
        let sts = "0\tg\tf\ty\t1\tn\tn\tA man.\tA dog.\t3.800\n";
        let s = parse(sts, p, &layout("stsb").unwrap()).unwrap();
        assert_eq!(s.examples[0].label, Label::Score(3.8));
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let p = Path::new("glue/RTE/train.tsv");
        let e = parse(
            "index\ts1\ts2\tlabel\n0\tA\tB\tmaybe\n",
            p,
            &layout("rte").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("glue/RTE/train.tsv:2: label `maybe`"), "{e}");
        let e = parse("1\tonly two\n", p, &layout("mrpc").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1: 2 tab-separated field(s)"), "{e}");
        let e = parse(
            "0\tg\tf\ty\t1\tn\tn\tA\tB\t7\n",
            p,
            &layout("stsb").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("outside 0–5"), "{e}");
        // QNLI's release has broken rows: counted, not fatal.
        let q = parse(
            "index\tquestion\tsentence\tlabel\n0\tQ?\tS.\tentailment\n1\tbroken\n",
            p,
            &layout("qnli").unwrap(),
        )
        .unwrap();
        assert_eq!((q.examples.len(), q.skipped), (1, 1));
    }
}
