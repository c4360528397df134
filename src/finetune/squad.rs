//! SQuAD: the JSON reader (v1.1 and v2.0 layouts), windows over long contexts (BERT's doc
//! stride), start/end labels, and the decoding of the best valid span back to context text.

use super::glue::ReadError;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

#[derive(Deserialize)]
struct FileJson {
    data: Vec<ArticleJson>,
}

#[derive(Deserialize)]
struct ArticleJson {
    #[serde(default)]
    title: String,
    paragraphs: Vec<ParagraphJson>,
}

#[derive(Deserialize)]
struct ParagraphJson {
    context: String,
    qas: Vec<QaJson>,
}

#[derive(Deserialize)]
struct QaJson {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<AnswerJson>,
    /// v2.0 only; v1.1 questions are all answerable.
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct AnswerJson {
    text: String,
    answer_start: usize,
}

/// One question with its context; `answers` are `(text, character start)`.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: String,
    pub article: usize,
    pub title: String,
    pub question: String,
    pub context: Arc<String>,
    pub answers: Vec<(String, usize)>,
    /// Every answer text of the file, also those not found at their `answer_start`: the
    /// official evaluation scores against all of them, so pretext's dev score does too.
    pub golds: Vec<String>,
    pub impossible: bool,
}

impl Question {
    pub fn gold_texts(&self) -> &[String] {
        &self.golds
    }
}

/// Questions in file order, and how many answers were dropped because their text is not at
/// `answer_start` in the context (the official v1.1 train set has a handful; HF's reference
/// preprocessing drops them the same way).
pub struct Read {
    pub questions: Vec<Question>,
    pub misaligned: usize,
    pub articles: usize,
}

pub fn read(path: &Path) -> Result<Read, ReadError> {
    let text = crate::files::read_to_string(path).map_err(|e| ReadError::Io {
        file: path.into(),
        reason: e.to_string(),
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Read, ReadError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let file: FileJson = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ReadError::Row {
            file: path.into(),
            line: inner.line(),
            message: format!("at `{key}`: {inner}"),
        }
    })?;
    let mut questions = Vec::new();
    let mut misaligned = 0;
    for (article, a) in file.data.iter().enumerate() {
        for p in &a.paragraphs {
            let context = Arc::new(p.context.clone());
            let chars: Vec<char> = p.context.chars().collect();
            for q in &p.qas {
                let mut answers = Vec::new();
                for ans in &q.answers {
                    let n = ans.text.chars().count();
                    let at: String = chars
                        .get(ans.answer_start..ans.answer_start + n)
                        .map(|s| s.iter().collect())
                        .unwrap_or_default();
                    if at == ans.text && n > 0 {
                        answers.push((ans.text.clone(), ans.answer_start));
                    } else {
                        misaligned += 1;
                    }
                }
                questions.push(Question {
                    id: q.id.clone(),
                    article,
                    title: a.title.clone(),
                    question: q.question.clone(),
                    context: context.clone(),
                    answers,
                    golds: q.answers.iter().map(|a| a.text.clone()).collect(),
                    impossible: q.is_impossible,
                });
            }
        }
    }
    if questions.is_empty() {
        return Err(ReadError::Empty { file: path.into() });
    }
    Ok(Read {
        questions,
        misaligned,
        articles: file.data.len(),
    })
}

/// One window of one question: `[CLS] question [SEP] context piece [SEP]`.
#[derive(Debug, Clone)]
pub struct Feature {
    pub question: usize,
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    /// For each position: the character span in the context, if the token is context.
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Whether this window gives the token its most context (BERT's rule for tokens that
    /// appear in several windows); only such tokens may start an answer.
    pub max_context: Vec<bool>,
    /// Answer token positions, or `(0, 0)` ([CLS]) when the window does not hold the answer.
    pub start: usize,
    pub end: usize,
}

/// Windows and labels.
pub struct WindowSettings {
    pub max_seq_len: usize,
    pub doc_stride: usize,
    pub max_query_len: usize,
}

/// `context_tokens`: `(id, char start, char end)` per context token.
pub fn windows(
    qi: usize,
    q: &Question,
    query: &[u32],
    context_tokens: &[(u32, usize, usize)],
    special: crate::data::Special,
    s: &WindowSettings,
) -> Vec<Feature> {
    let query = &query[..query.len().min(s.max_query_len)];
    let room = s.max_seq_len.saturating_sub(query.len() + 3).max(1);
    let stride = s.doc_stride.clamp(1, room);
    let n = context_tokens.len();
    let mut starts = vec![0];
    while starts.last().is_some_and(|&st| st + room < n) {
        starts.push(starts.last().copied().unwrap_or(0) + stride);
    }
    // Answer as context-token indices (first answer; the others are only for scoring).
    let answer = q.answers.first().and_then(|(text, c0)| {
        let c1 = c0 + text.chars().count();
        let first = context_tokens.iter().position(|t| t.2 > *c0)?;
        let last = context_tokens.iter().rposition(|t| t.1 < c1)?;
        (first <= last).then_some((first, last))
    });
    let spans: Vec<(usize, usize)> = starts.iter().map(|&st| (st, (st + room).min(n))).collect();
    spans
        .iter()
        .map(|&(st, en)| {
            let mut ids = vec![special.cls];
            ids.extend_from_slice(query);
            ids.push(special.sep);
            let mut types = vec![0; ids.len()];
            let mut offsets = vec![None; ids.len()];
            let mut max_context = vec![false; ids.len()];
            let base = ids.len();
            for (k, t) in context_tokens[st..en].iter().enumerate() {
                ids.push(t.0);
                types.push(1);
                offsets.push(Some((t.1, t.2)));
                max_context.push(is_max_context(&spans, st + k, st, en));
            }
            ids.push(special.sep);
            types.push(1);
            offsets.push(None);
            max_context.push(false);
            let (start, end) = match answer {
                Some((a, b)) if a >= st && b < en => (base + a - st, base + b - st),
                _ => (0, 0),
            };
            Feature {
                question: qi,
                ids,
                types,
                offsets,
                max_context,
                start,
                end,
            }
        })
        .collect()
}

/// BERT's `_check_is_max_context`: score = min(left, right context) + 0.01 · window length.
fn is_max_context(spans: &[(usize, usize)], pos: usize, st: usize, en: usize) -> bool {
    let score = |(a, b): (usize, usize)| -> Option<f64> {
        if pos < a || pos >= b {
            return None;
        }
        let left = pos - a;
        let right = b - 1 - pos;
        Some(left.min(right) as f64 + 0.01 * (b - a) as f64)
    };
    let mine = score((st, en)).unwrap_or(f64::MIN);
    spans
        .iter()
        .filter_map(|&sp| score(sp))
        .all(|other| other <= mine)
}

/// The best span of one question over its windows: top `n_best` starts and ends (by logit)
/// among context tokens, `start ≤ end`, at most `max_answer_len` tokens, start where the
/// window gives the token most context; returns the answer text (empty if none is valid).
pub fn best_answer(
    context: &str,
    features: &[(&Feature, &[f32], &[f32])],
    n_best: usize,
    max_answer_len: usize,
) -> String {
    let mut best: Option<(f32, usize, usize)> = None;
    for (f, start_logits, end_logits) in features {
        let top = |logits: &[f32], starts: bool| {
            let mut idx: Vec<usize> = (0..f.ids.len().min(logits.len()))
                .filter(|&i| f.offsets[i].is_some() && (!starts || f.max_context[i]))
                .collect();
            idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            idx.truncate(n_best);
            idx
        };
        for &s in &top(start_logits, true) {
            for &e in &top(end_logits, false) {
                if e < s || e - s + 1 > max_answer_len {
                    continue;
                }
                let score = start_logits[s] + end_logits[e];
                if best.is_none_or(|b| score > b.0) {
                    let (c0, _) = f.offsets[s].expect("context token");
                    let (_, c1) = f.offsets[e].expect("context token");
                    best = Some((score, c0, c1));
                }
            }
        }
    }
    best.map(|(_, c0, c1)| context.chars().skip(c0).take(c1 - c0).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": "Normandy is in France.", "qas": [
            {"id": "a", "question": "Where?", "answers": [{"text": "France", "answer_start": 15}]},
            {"id": "b", "question": "Who?", "answers": [], "is_impossible": true},
            {"id": "c", "question": "Bad?", "answers": [{"text": "Spain", "answer_start": 15}]}
        ]}]}]}"#;

    #[test]
    fn reads_v2_and_counts_misaligned_answers() {
        let r = parse(FILE, Path::new("s.json")).unwrap();
        assert_eq!(r.questions.len(), 3);
        assert_eq!(r.questions[0].answers, vec![("France".to_string(), 15)]);
        assert!(r.questions[1].impossible);
        assert_eq!(r.misaligned, 1);
        let e = parse(
            r#"{"data": [{"paragraphs": [{"context": 3}]}]}"#,
            Path::new("s.json"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("s.json:1: at `data[0].paragraphs[0].context`"),
            "{e}"
        );
    }

    fn special() -> crate::data::Special {
        crate::data::Special {
            pad: 0,
            unk: 1,
            cls: 2,
            sep: 3,
            mask: 4,
        }
    }

    #[test]
    fn windows_cover_the_context_and_label_the_answer() {
        // 10 context tokens of 2 characters each ("ab" at 3k..3k+2), answer = tokens 6..=7.
        let ctx: Vec<(u32, usize, usize)> = (0..10)
            .map(|k| (10 + k, 3 * k as usize, 3 * k as usize + 2))
            .collect();
        let q = Question {
            id: "x".into(),
            article: 0,
            title: String::new(),
            question: String::new(),
            context: Arc::new(String::new()),
            answers: vec![("x".repeat(5), 18)],
            golds: vec!["x".repeat(5)],
            impossible: false,
        };
        let s = WindowSettings {
            max_seq_len: 9, // [CLS] q q [SEP] + 4 context + [SEP]
            doc_stride: 3,
            max_query_len: 8,
        };
        let f = windows(0, &q, &[7, 8], &ctx, special(), &s);
        // windows start at 0, 3, 6 (6 + 4 ≥ 10)
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].ids, vec![2, 7, 8, 3, 10, 11, 12, 13, 3]);
        assert_eq!(f[0].types, vec![0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!((f[0].start, f[0].end), (0, 0)); // answer not in the window
                                                    // Window 3..7 holds token 6 but not token 7: a cut answer is no answer.
        assert_eq!((f[1].start, f[1].end), (0, 0));
        assert_eq!((f[2].start, f[2].end), (4, 5));
        // token 6 sits at offset 3 of window 1 (min(3, 0)) and offset 0 of window 2: window 1
        // scores 0 + 0.04, window 2 scores 0 + 0.04 → tie, both count as max context.
        assert!(f[1].max_context[4 + 3] && f[2].max_context[4]);
        // token 3 is the last of window 0..4 (score 0.04) but has context on both sides in
        // window 2..6 (min(1, 2) + 0.04): only the second window may start an answer there.
        let spans = [(0, 4), (2, 6)];
        assert!(!is_max_context(&spans, 3, 0, 4));
        assert!(is_max_context(&spans, 3, 2, 6));
    }

    #[test]
    fn best_answer_respects_order_and_length() {
        let context = "aa bb cc dd";
        let f = Feature {
            question: 0,
            ids: vec![2, 10, 11, 12, 13, 3],
            types: vec![0, 1, 1, 1, 1, 1],
            offsets: vec![
                None,
                Some((0, 2)),
                Some((3, 5)),
                Some((6, 8)),
                Some((9, 11)),
                None,
            ],
            max_context: vec![false, true, true, true, true, false],
            start: 0,
            end: 0,
        };
        // The highest start (position 3) comes after the highest end (position 1), so that
        // pair is invalid; start 1 / end 1 (1 + 3) beats start 3 / end 4 (2 + 1).
        let start = [9.0, 1.0, 0.0, 2.0, 0.0, 9.0];
        let end = [9.0, 3.0, 0.0, 0.0, 1.0, 9.0];
        assert_eq!(best_answer(context, &[(&f, &start, &end)], 20, 30), "aa");
        assert_eq!(best_answer(context, &[(&f, &start, &end)], 20, 1), "aa");
        let end = [0.0, 0.0, 0.0, 0.0, 5.0, 0.0];
        assert_eq!(best_answer(context, &[(&f, &start, &end)], 20, 30), "cc dd");
        // One token at most: (4, 4) scores 0 + 5.
        assert_eq!(best_answer(context, &[(&f, &start, &end)], 20, 1), "dd");
    }
}
