//! The layouts a corpus file can have, each parsed into documents of sentences: plain text
//! (a blank line between documents), WikiText (` = Title = ` lines start articles), Project
//! Gutenberg books (framing stripped, wrapped lines joined, upper-case title lines start a
//! tale or chapter), WikiExtractor output (`<doc …>` … `</doc>`) and JSON lines with a `text`
//! field. Sentences are split with Unicode's sentence boundaries (UAX #29). Line endings may
//! be `\n` or `\r\n`.

use super::corpus::{CorpusError, Document};
use crate::config::CorpusFormat;
use std::path::Path;
use unicode_segmentation::UnicodeSegmentation;

/// Every document of `text` in `format` (`Auto`: detected from the text), before any filter.
/// Only JSON lines can be malformed; the other layouts read any text.
pub fn parse_all(
    text: &str,
    file: &Path,
    format: CorpusFormat,
) -> Result<Vec<Document>, CorpusError> {
    let format = match format {
        CorpusFormat::Auto => detect(text),
        f => f,
    };
    Ok(match format {
        CorpusFormat::Wikitext => wikitext(text, file),
        CorpusFormat::Gutenberg => gutenberg(text, file),
        CorpusFormat::Wikiextractor => wikiextractor(text, file),
        CorpusFormat::Jsonl => return jsonl(text, file, 0),
        CorpusFormat::Text | CorpusFormat::Auto => plain(text, file),
    })
}

/// The layout of a file's text (or of its first block, for a file read in blocks).
pub fn detect(text: &str) -> CorpusFormat {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if text.contains("*** START OF THE PROJECT GUTENBERG")
        || text.contains("*** START OF THIS PROJECT GUTENBERG")
    {
        CorpusFormat::Gutenberg
    } else if is_doc_start(first) {
        CorpusFormat::Wikiextractor
    } else if first.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(first.trim())
            .is_ok_and(|v| v.get("text").is_some())
    {
        CorpusFormat::Jsonl
    } else if text.lines().any(is_wiki_title) {
        CorpusFormat::Wikitext
    } else {
        CorpusFormat::Text
    }
}

pub fn is_wiki_title(line: &str) -> bool {
    let t = line.trim();
    t.len() > 4 && t.starts_with("= ") && t.ends_with(" =") && !t.starts_with("= =")
}

/// Splits a paragraph into sentences with Unicode sentence boundaries; a "sentence" longer
/// than `MAX_SENTENCE_BYTES` is cut at spaces into pieces no longer.
pub fn sentences(paragraph: &str) -> impl Iterator<Item = String> + '_ {
    paragraph
        .unicode_sentences()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .flat_map(|s| pieces(s, MAX_SENTENCE_BYTES))
        .filter(|s| s.chars().any(char::is_alphanumeric))
}

/// The longest sentence handed on, in bytes. Text without sentence punctuation (a file of one
/// line, minified text) would otherwise reach the tokenizer as one sentence, and `tokenizers`
/// keeps about 100 bytes of alignments per byte of a text it is given: one 36 MB line took
/// 3.4 GB to train a vocabulary on. A sequence holds a few hundred tokens, so pieces of 64 KiB
/// change nothing a model sees.
pub const MAX_SENTENCE_BYTES: usize = 1 << 16;

/// `s` (single spaces between words) cut at spaces into pieces of at most `max` bytes; a word
/// longer than `max` is cut at a character boundary.
fn pieces(s: String, max: usize) -> Vec<String> {
    if s.len() <= max {
        return vec![s];
    }
    let mut out = Vec::new();
    let mut rest = s.as_str();
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let cut = rest[..end].rfind(' ').filter(|&i| i > 0).unwrap_or(end);
        out.push(rest[..cut].to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

struct Builder<'a> {
    file: &'a Path,
    docs: Vec<Document>,
    current: Option<Document>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a Path) -> Self {
        Self {
            file,
            docs: vec![],
            current: None,
        }
    }
    fn start(&mut self, line_no: usize) {
        self.finish();
        self.current = Some(Document {
            origin: format!("{}:{}", self.file.display(), line_no),
            sentences: vec![],
        });
    }
    fn paragraph(&mut self, line_no: usize, text: &str) {
        if self.current.is_none() {
            self.start(line_no);
        }
        let doc = self.current.as_mut().expect("started above");
        doc.sentences.extend(sentences(text));
    }
    fn finish(&mut self) {
        if let Some(d) = self.current.take() {
            if !d.sentences.is_empty() {
                self.docs.push(d);
            }
        }
    }
    fn done(mut self) -> Vec<Document> {
        self.finish();
        self.docs
    }
}

pub fn plain(text: &str, file: &Path) -> Vec<Document> {
    let mut b = Builder::new(file);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            b.finish();
        } else {
            b.paragraph(i + 1, line);
        }
    }
    b.done()
}

pub fn wikitext(text: &str, file: &Path) -> Vec<Document> {
    let mut b = Builder::new(file);
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if is_wiki_title(line) {
            b.start(i + 1);
        } else if t.is_empty() || t.starts_with("= =") {
            continue;
        } else {
            b.paragraph(i + 1, t);
        }
    }
    b.done()
}

fn is_gutenberg_title(line: &str) -> bool {
    let letters = line.chars().filter(|c| c.is_alphabetic()).count();
    !line.starts_with(char::is_whitespace)
        && letters >= 4
        && line.len() <= 80
        && line.chars().all(|c| !c.is_lowercase())
}

pub fn gutenberg(text: &str, file: &Path) -> Vec<Document> {
    let mut b = Builder::new(file);
    let mut inside = !text.contains("*** START OF");
    let mut para = String::new();
    let mut para_line = 0;
    let flush = |b: &mut Builder, para: &mut String, at: usize| {
        if !para.trim().is_empty() {
            b.paragraph(at, para);
        }
        para.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("*** START OF") {
            inside = true;
            continue;
        }
        if line.starts_with("*** END OF") {
            break;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut b, &mut para, para_line);
        } else if is_gutenberg_title(line) {
            flush(&mut b, &mut para, para_line);
            b.start(i + 1);
        } else {
            if para.is_empty() {
                para_line = i + 1;
            }
            para.push(' ');
            para.push_str(line.trim());
        }
    }
    flush(&mut b, &mut para, para_line);
    b.done()
}

/// Whether a line opens a WikiExtractor document (`<doc id="…" url="…" title="…">`).
pub fn is_doc_start(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("<doc ") && t.contains("id=") && t.trim_end().ends_with('>')
}

/// A WikiExtractor section heading: one short line ending in "." (`Early life.`, `Anarchist
/// schools of thought.`) that reads as a title, not a sentence — no common finite verb, not
/// opened by a pronoun. Of the 6,854 short one-sentence lines of enwiki-2015/AA/wiki_00..09
/// it drops 6,723 as headings and keeps 131 as sentences (`He died in Rome and was buried in
/// Bergamo.`) that a length rule alone would have dropped; a short verbless sentence can
/// still be taken for a heading.
fn is_heading(line: &str) -> bool {
    const VERBS: &[&str] = &[
        "is", "was", "are", "were", "has", "had", "have", "will", "did", "does", "can", "be",
        "been", "would", "could", "became", "made", "said", "died",
    ];
    const OPENERS: &[&str] = &[
        "he", "she", "it", "they", "we", "i", "this", "these", "there", "his", "her", "its",
        "their",
    ];
    let t = line.trim();
    let Some(body) = t.strip_suffix('.') else {
        return false;
    };
    let words: Vec<String> = body
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    t.len() <= 100
        && !words.is_empty()
        && words.len() <= 10
        && !body.contains(['.', '!', '?', ';', ':', '"'])
        && !words.iter().any(|w| VERBS.contains(&w.as_str()))
        && !OPENERS.contains(&words[0].as_str())
}

/// WikiExtractor output: each `<doc …>` … `</doc>` one document; the title line that follows
/// `<doc>` and section headings are dropped. Text outside any `<doc>` is ignored.
pub fn wikiextractor(text: &str, file: &Path) -> Vec<Document> {
    let mut b = Builder::new(file);
    let mut inside = false;
    let mut expect_title = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if is_doc_start(line) {
            b.start(i + 1);
            inside = true;
            expect_title = true;
        } else if t == "</doc>" {
            b.finish();
            inside = false;
        } else if !inside || t.is_empty() {
            continue;
        } else if expect_title {
            expect_title = false; // the article's title, repeated as its first line
        } else if !is_heading(t) {
            b.paragraph(i + 1, t);
        }
    }
    b.done()
}

/// JSON lines: each non-empty line an object with a string field `text`, one document, whose
/// lines are its paragraphs. `first_line` numbers the text's first line minus one (a block
/// of a larger file), so errors name the file's real line.
pub fn jsonl(text: &str, file: &Path, first_line: usize) -> Result<Vec<Document>, CorpusError> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = first_line + i + 1;
        let bad = |reason: String| CorpusError::BadLine {
            file: file.into(),
            line: line_no,
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let body = match v.get("text") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(bad("the field `text` is not a string".into())),
            None => return Err(bad("the object has no field `text`".into())),
        };
        let sentences: Vec<String> = body.lines().flat_map(sentences).collect();
        if !sentences.is_empty() {
            docs.push(Document {
                origin: format!("{}:{line_no}", file.display()),
                sentences,
            });
        }
    }
    Ok(docs)
}
