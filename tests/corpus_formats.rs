//! Issue 14, item 1: corpora as users have them — WikiExtractor output, JSON lines, gzip,
//! glob patterns, CRLF, layouts mixed in one corpus — through the whole-file reader, the
//! block reader of the shard cache, and `data::prepare`.

mod common;

use pretext::config::{CorpusFormat, DataConfig, LoadedExperiment};
use pretext::data::{corpus, sources};
use std::io::Write;
use std::path::Path;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const WIKI: &str =
    "<doc id=\"12\" url=\"http://en.wikipedia.org/wiki?curid=12\" title=\"Anarchism\">\n\
Anarchism\n\
\n\
Anarchism is a political philosophy. It advocates stateless societies.\n\
Etymology and terminology.\n\
The term is a compound word. It comes from Greek.\n\
</doc>\n\
<doc id=\"25\" url=\"http://en.wikipedia.org/wiki?curid=25\" title=\"Autism\">\n\
Autism\n\
\n\
Autism is a disorder of neural development. It is diagnosed in childhood.\n\
Social development.\n\
People with autism have social impairments.\n\
</doc>\n";

fn sentences(docs: &[corpus::Document]) -> Vec<Vec<String>> {
    docs.iter().map(|d| d.sentences.clone()).collect()
}

#[test]
fn wikiextractor_documents_drop_titles_and_headings() {
    let docs = corpus::parse(WIKI, Path::new("wiki_00"), CorpusFormat::Auto, 1).unwrap();
    assert_eq!(
        sentences(&docs),
        vec![
            vec![
                "Anarchism is a political philosophy.",
                "It advocates stateless societies.",
                "The term is a compound word.",
                "It comes from Greek."
            ],
            vec![
                "Autism is a disorder of neural development.",
                "It is diagnosed in childhood.",
                "People with autism have social impairments."
            ],
        ]
    );
    assert_eq!(docs[1].origin, "wiki_00:8");
    // The same with CRLF line endings and stated explicitly.
    let crlf = WIKI.replace('\n', "\r\n");
    let d2 = corpus::parse(&crlf, Path::new("w"), CorpusFormat::Wikiextractor, 1).unwrap();
    assert_eq!(sentences(&d2), sentences(&docs));
}

#[test]
fn jsonl_is_one_document_a_line_and_bad_lines_are_named() {
    let text = "{\"text\": \"First doc. Second sentence.\\nNew paragraph.\", \"id\": 1}\n\n{\"text\": \"Other doc.\"}\n";
    let docs = corpus::parse(text, Path::new("d.jsonl"), CorpusFormat::Auto, 1).unwrap();
    assert_eq!(
        sentences(&docs),
        vec![
            vec!["First doc.", "Second sentence.", "New paragraph."],
            vec!["Other doc."]
        ]
    );
    assert_eq!(docs[1].origin, "d.jsonl:3");
    for (bad, why) in [
        (
            "{\"text\": \"ok.\"}\n{\"title\": \"x\"}\n",
            "no field `text`",
        ),
        ("{\"text\": \"ok.\"}\n{\"text\": 3}\n", "not a string"),
        (
            "{\"text\": \"ok.\"}\n{\"text\": \"cut\n",
            "not a JSON object",
        ),
    ] {
        let e = corpus::parse(bad, Path::new("d.jsonl"), CorpusFormat::Jsonl, 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.jsonl:2: ") && e.contains(why), "{e}");
    }
    // The block reader names the file's line, not the block's.
    let dir = common::scratch("jsonl");
    let mut body: String = (0..200)
        .map(|i| format!("{{\"text\": \"Document number {i}. It has two sentences.\"}}\n"))
        .collect();
    body.push_str("{\"text\": 7}\n");
    std::fs::write(dir.join("big.jsonl"), &body).unwrap();
    let mut blocks = corpus::Blocks::open("big.jsonl", &dir, CorpusFormat::Auto, 1, 500).unwrap();
    let e = loop {
        match blocks.next_block() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bad line was not found"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(e.contains("big.jsonl:201: "), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gzip file reads as its text, by content (the name need not end in .gz), through both
/// readers; a corrupt stream is an error naming the file.
#[test]
fn gzip_files_read_transparently_and_corruption_is_named() {
    let dir = common::scratch("gzip");
    std::fs::write(dir.join("wiki_00.gz"), gzip(WIKI.as_bytes())).unwrap();
    std::fs::write(dir.join("wiki_01"), gzip(WIKI.as_bytes())).unwrap();
    let plain = corpus::parse(WIKI, Path::new("x"), CorpusFormat::Auto, 1).unwrap();
    for name in ["wiki_00.gz", "wiki_01"] {
        let docs = corpus::read_source(name, &dir, CorpusFormat::Auto, 1).unwrap();
        assert_eq!(sentences(&docs), sentences(&plain));
        let mut blocks = corpus::Blocks::open(name, &dir, CorpusFormat::Auto, 1, 64).unwrap();
        let mut streamed = Vec::new();
        while let Some(d) = blocks.next_block().unwrap() {
            streamed.extend(d);
        }
        assert_eq!(sentences(&streamed), sentences(&plain));
    }
    let mut broken = gzip(WIKI.as_bytes());
    let n = broken.len();
    broken.truncate(n / 2);
    std::fs::write(dir.join("broken.gz"), broken).unwrap();
    let e = corpus::read_source("broken.gz", &dir, CorpusFormat::Auto, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.gz"), "{e}");
    // Special files are refused rather than read (or waited on) forever.
    let e = corpus::read_source("/dev/zero", &dir, CorpusFormat::Auto, 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn patterns_expand_in_a_stable_order_and_an_empty_match_is_named() {
    let dir = common::scratch("glob");
    for sub in ["AB", "AA"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for f in ["wiki_01", "wiki_00"] {
            std::fs::write(dir.join(sub).join(f), "x").unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("AA/wiki_dir")).unwrap(); // folders are not files
    let got = sources::expand(&["embedded".into(), "*/wiki_*".into()], &dir).unwrap();
    let names: Vec<String> = got
        .iter()
        .map(|p| {
            Path::new(p)
                .strip_prefix(&dir)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    assert_eq!(
        names,
        [
            "embedded",
            "AA/wiki_00",
            "AA/wiki_01",
            "AB/wiki_00",
            "AB/wiki_01"
        ]
    );
    let e = sources::expand(&["*/nothing_*".into()], &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nothing_*") && e.contains("matches no file"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One corpus mixing a WikiExtractor .gz file and a CRLF Gutenberg book, layouts decided per
/// file, through `data::prepare` both read whole and through the shard cache.
#[test]
fn one_corpus_mixes_layouts_per_file_whole_and_cached() {
    let dir = common::scratch("mixed");
    std::fs::create_dir_all(dir.join("wiki/AA")).unwrap();
    std::fs::write(dir.join("wiki/AA/wiki_00.gz"), gzip(WIKI.as_bytes())).unwrap();
    let book = "The Project Gutenberg eBook of Tales\r\n\r\n*** START OF THE PROJECT GUTENBERG EBOOK TALES ***\r\n\r\nTHE FROG KING\r\n\r\nIn olden times when wishing still helped one, there lived a king\r\nwhose daughters were all beautiful. The youngest was so beautiful\r\nthat the sun itself was astonished.\r\n\r\nTHE WOLF\r\n\r\nThere was once a wolf. He was hungry.\r\n\r\n*** END OF THE PROJECT GUTENBERG EBOOK TALES ***\r\nLicence text here.\r\n";
    std::fs::create_dir_all(dir.join("books")).unwrap();
    std::fs::write(dir.join("books/pg1.txt"), book).unwrap();
    let data = DataConfig {
        corpus: vec!["wiki/*/wiki_*".into(), "books/*.txt".into()],
        min_sentences: 1,
        heldout_fraction: 0.0,
        ..DataConfig::default()
    };
    let whole = corpus::Corpus::load(
        &sources::expand(&data.corpus, &dir).unwrap(),
        &dir,
        CorpusFormat::Auto,
        1,
        0.0,
    )
    .unwrap();
    let mut all = sentences(&whole.train);
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&vec![
        "There was once a wolf.".to_string(),
        "He was hungry.".to_string()
    ]));
    assert!(!all
        .iter()
        .flatten()
        .any(|s| s.contains("Licence") || s.contains("Etymology") || s == "Anarchism"));
    // Through data::prepare, whole and cached: the same number of training tokens.
    let text = "[tokenizer]\nvocab_size = 120\nmin_frequency = 1\n";
    let tok = LoadedExperiment::from_str(text, Path::new("t.toml"))
        .unwrap()
        .base
        .tokenizer;
    let exp = dir.join("exp");
    let p1 = pretext::data::prepare(&data, &tok, &dir, Some(&exp)).unwrap();
    let cached = DataConfig {
        cache: true,
        ..data.clone()
    };
    let p2 = pretext::data::prepare(&cached, &tok, &dir, Some(&exp)).unwrap();
    assert!(p2.cache.is_some());
    assert_eq!(p1.train.tokens(), p2.train.tokens());
    assert_eq!(p1.train.documents(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real files of ../shared/data, when they are there: a WikiExtractor .gz file and a CRLF
/// Gutenberg book.
#[test]
fn reads_the_shared_wikipedia_and_gutenberg_files() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let wiki = shared.join("enwiki-2015/AA/wiki_00.gz");
    if !wiki.exists() {
        eprintln!("skipped: {} is not here", wiki.display());
        return;
    }
    let docs = corpus::read_source(
        &wiki.to_string_lossy(),
        Path::new("."),
        CorpusFormat::Auto,
        1,
    )
    .unwrap();
    assert!(docs.len() > 20, "{} documents", docs.len());
    assert!(docs[0].sentences[0].starts_with("Anarchism is a political philosophy"));
    let all: Vec<&String> = docs.iter().flat_map(|d| &d.sentences).collect();
    assert!(!all
        .iter()
        .any(|s| *s == "History." || s.starts_with("<doc")));
    let files = sources::expand(&["gutenberg-191/books/*.txt".into()], &shared).unwrap();
    assert_eq!(files.len(), 191);
    let book = corpus::read_source(&files[0], Path::new("."), CorpusFormat::Auto, 1).unwrap();
    assert!(book.iter().all(|d| d
        .sentences
        .iter()
        .all(|s| !s.contains('\r') && !s.contains("PROJECT GUTENBERG"))));
}

/// Issue 19: text without sentence punctuation (one line of megabytes) reaches the tokenizer
/// in pieces of at most `MAX_SENTENCE_BYTES`, cut at spaces and losing no word — one 36 MB
/// line used to take 3.4 GB to train a vocabulary on.
#[test]
fn a_sentence_of_megabytes_is_cut_into_bounded_pieces() {
    use pretext::data::layouts::{sentences, MAX_SENTENCE_BYTES};
    let words: Vec<String> = (0..60_000).map(|i| format!("w{}é .", i % 97)).collect();
    let line = words.join(" ");
    assert!(line.len() > 5 * MAX_SENTENCE_BYTES);
    let got: Vec<String> = sentences(&line).collect();
    let pieces = got.len();
    assert!(pieces >= 5, "{pieces} piece(s)");
    assert!(got.iter().all(|s| s.len() <= MAX_SENTENCE_BYTES));
    assert_eq!(got.join(" "), line, "a word was lost or split");
    // One word longer than a piece is cut at character boundaries, nothing lost.
    let word = "é".repeat(MAX_SENTENCE_BYTES);
    let got: Vec<String> = sentences(&word).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got.concat(), word);

    // Through the binary: the tokenizer trains on the pieces.
    let dir = common::scratch("long-line");
    std::fs::write(dir.join("line.txt"), &line).unwrap();
    let o = common::pretext()
        .args(["tokenizer", "train", "--vocab-size", "200", "--corpus"])
        .arg(dir.join("line.txt"))
        .arg("--out")
        .arg(dir.join("tok.json"))
        .output()
        .unwrap();
    let msg = common::output_text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains(&format!("on {pieces} sentences")), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
