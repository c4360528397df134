//! Issue 9: corpora larger than memory — the block reader, the memory-mapped shards, and the
//! sharded sampler with exact resume on it. The cache that runs build and share is in
//! tests/cache_reuse.rs.

use pretext::config::CorpusFormat;
use pretext::data::cache::held_out;
use pretext::data::corpus::{read_source, Blocks, CorpusError, Document};
use pretext::data::shards::{write_shard, MappedShard};
use pretext::data::{
    self, BatchStream, MaskingConfig, PairMode, Shard, StreamSettings, TokenCorpus, TokenDoc,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    p.exists().then_some(p)
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretext-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_blocks(source: &str, base: &Path, format: CorpusFormat, block: usize) -> Vec<Document> {
    let mut b = Blocks::open(source, base, format, 2, block).unwrap();
    let mut docs = vec![];
    let mut blocks = 0;
    while let Some(d) = b.next_block().unwrap() {
        docs.extend(d);
        blocks += 1;
    }
    // Every source here is larger than 4 KiB: it must really have been cut (except a
    // Gutenberg book, which is read whole by design).
    assert!(
        block > 4 << 10 || blocks > 1 || source.starts_with("gutenberg"),
        "{source}: one block only"
    );
    docs
}

fn sentences(docs: &[Document]) -> Vec<Vec<String>> {
    docs.iter().map(|d| d.sentences.clone()).collect()
}

#[test]
fn blocks_give_the_documents_of_a_whole_read() {
    let mut cases = vec![("embedded".to_string(), PathBuf::from("."))];
    if let Some(root) = shared_data() {
        for f in [
            "wikitext-2/valid.txt",
            "gutenberg/grimm-tales.txt",
            "gutenberg/japanese-fairy-tales.txt",
        ] {
            cases.push((f.to_string(), root.clone()));
        }
    } else {
        eprintln!("../shared/data not found: only the embedded corpus is checked");
    }
    for (source, base) in &cases {
        let whole = read_source(source, base, CorpusFormat::Auto, 2).unwrap();
        for block in [4 << 10, 64 << 10] {
            let streamed = read_blocks(source, base, CorpusFormat::Auto, block);
            assert_eq!(
                sentences(&whole),
                sentences(&streamed),
                "{source} in blocks of {block} bytes"
            );
        }
    }
}

#[test]
fn block_reader_errors_name_the_file() {
    let dir = temp("errors");
    std::fs::write(dir.join("blank.txt"), "\n  \n\n").unwrap();
    let mut latin1 = "Hello there. This is fine.\n".repeat(300).into_bytes();
    latin1.extend(b"caf\xe9 au lait.\n");
    std::fs::write(dir.join("latin1.txt"), &latin1).unwrap();
    std::fs::write(dir.join("short.txt"), "One sentence.\n\nAnother one.\n").unwrap();
    let drain = |name: &str| -> CorpusError {
        let mut b = Blocks::open(name, &dir, CorpusFormat::Auto, 2, 1024).unwrap();
        loop {
            match b.next_block() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{name}: no error"),
                Err(e) => return e,
            }
        }
    };
    assert!(matches!(drain("blank.txt"), CorpusError::Empty { .. }));
    match drain("latin1.txt") {
        CorpusError::InvalidUtf8 { offset, file } => {
            assert_eq!(offset, latin1.len() - 11, "the offset of the 0xE9 byte");
            assert!(file.ends_with("latin1.txt"));
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        drain("short.txt"),
        CorpusError::NoUsableDocuments { documents: 2, .. }
    ));
    let e = Blocks::open("missing.txt", &dir, CorpusFormat::Auto, 2, 1024)
        .err()
        .unwrap();
    assert!(e.to_string().contains("missing.txt"), "{e}");
}

#[test]
fn held_out_rule_spreads_the_exact_fraction() {
    for f in [0.0, 0.05, 0.1, 0.25, 0.5] {
        let n = (0..1000).filter(|&k| held_out(k, f)).count();
        assert_eq!(n, (1000.0 * f) as usize, "fraction {f}");
    }
    assert!(
        (0..5).any(|k| held_out(k, 0.1)),
        "a held-out document among the first 5"
    );
}

/// Documents whose tokens say where they are: document d, sentence s, token t is
/// `(d + 1) * 1000 + s * 10 + t` (clear of the special tokens' ids).
fn numbered(first: usize, n: usize) -> Vec<TokenDoc> {
    (first..first + n)
        .map(|d| {
            (0..6)
                .map(|s| {
                    (0..5)
                        .map(|t| ((d + 1) * 1000 + s * 10 + t) as u32)
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn mapped_corpus(dir: &Path, shards: usize, per_shard: usize) -> TokenCorpus {
    let shards = (0..shards)
        .map(|i| {
            let file = dir.join(format!("s{i}.bin"));
            let (crc, _) = write_shard(&file, &numbered(i * per_shard, per_shard)).unwrap();
            Shard::Mapped(MappedShard::open(&file, crc).unwrap())
        })
        .collect();
    TokenCorpus {
        shards,
        fingerprint: "test".into(),
    }
}

#[test]
fn a_mapped_shard_reads_back_what_was_written() {
    let dir = temp("roundtrip");
    let docs = numbered(3, 7);
    let file = dir.join("s.bin");
    let (crc, bytes) = write_shard(&file, &docs).unwrap();
    assert_eq!(bytes, std::fs::metadata(&file).unwrap().len());
    let shard = Shard::Mapped(MappedShard::open(&file, crc).unwrap());
    let memory = Shard::Memory(docs.clone());
    assert_eq!(shard.documents(), 7);
    assert_eq!(shard.tokens(), memory.tokens());
    for (d, doc) in docs.iter().enumerate() {
        assert_eq!(shard.sentences(d), 6);
        for (s, sentence) in doc.iter().enumerate() {
            assert_eq!(shard.sentence(d, s), &sentence[..]);
        }
    }
    // A flipped byte fails the checksum; a wrong length fails before any access.
    let mut raw = std::fs::read(&file).unwrap();
    raw[100] ^= 1;
    std::fs::write(dir.join("bad.bin"), &raw).unwrap();
    let e = MappedShard::open(&dir.join("bad.bin"), crc).err().unwrap();
    assert!(e.to_string().contains("bad.bin"), "{e}");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    raw[100] ^= 1;
    raw.truncate(raw.len() - 4);
    std::fs::write(dir.join("short.bin"), &raw).unwrap();
    let e = MappedShard::open(&dir.join("short.bin"), crc32fast::hash(&raw))
        .err()
        .unwrap();
    assert!(e.to_string().contains("bytes for 7 documents"), "{e}");
}

/// One tokenizer for every test of this process, written and loaded once: the tests run on
/// parallel threads, and each writing the same `vocab.txt` (after `temp` removed the folder)
/// let one read another's half-written file.
fn tokenizer() -> Arc<data::Tokenizer> {
    static TOKENIZER: std::sync::OnceLock<Arc<data::Tokenizer>> = std::sync::OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let dir = temp("vocab");
            let mut words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            words.extend((words.len()..30_000).map(|i| format!("w{i}")));
            std::fs::write(dir.join("vocab.txt"), words.join("\n")).unwrap();
            Arc::new(data::Tokenizer::load(&dir.join("vocab.txt"), true).unwrap())
        })
        .clone()
}

fn settings(mode: PairMode) -> StreamSettings {
    StreamSettings {
        seq_len: 24,
        short_seq_prob: 0.0,
        mode,
        masking: Some(MaskingConfig::default()),
    }
}

#[test]
fn an_epoch_visits_every_shard_once_in_a_fresh_order() {
    let dir = temp("epoch");
    let corpus = Arc::new(mapped_corpus(&dir, 5, 4));
    let s = StreamSettings {
        masking: None,
        ..settings(PairMode::Single)
    };
    let mut bs = BatchStream::new(corpus, tokenizer(), s, 3, "t").unwrap();
    // Two instances a document, 4 documents a shard, 5 shards: 40 instances an epoch.
    let mut orders = vec![vec![]; 4];
    let mut seen = vec![std::collections::BTreeSet::new(); 4];
    for _ in 0..130 {
        let b = bs.next_batch(1).unwrap();
        let epoch = bs.state().epoch as usize;
        let doc = b.input_ids[1] as usize / 1000 - 1;
        let order: &mut Vec<usize> = &mut orders[epoch];
        if order.last() != Some(&(doc / 4)) {
            order.push(doc / 4);
        }
        seen[epoch].insert(doc);
    }
    for e in 0..3 {
        let mut sorted = orders[e].clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2, 3, 4],
            "epoch {e}: shards visited {:?}",
            orders[e]
        );
        assert_eq!(seen[e].len(), 20, "epoch {e}: documents seen");
    }
    assert!(
        orders[0] != orders[1] || orders[1] != orders[2],
        "shard order never changes: {orders:?}"
    );
}

#[test]
fn nsp_random_next_comes_from_another_document_of_the_shard() {
    let dir = temp("nsp");
    let corpus = Arc::new(mapped_corpus(&dir, 3, 4));
    let mut bs = BatchStream::new(corpus, tokenizer(), settings(PairMode::Nsp), 5, "t").unwrap();
    let (mut random, mut next) = (0, 0);
    for _ in 0..60 {
        let b = bs.next_batch(1).unwrap();
        let ids = &b.input_ids;
        let sep = ids.iter().position(|&t| t == 3).unwrap();
        // Token ids survive masking in 85% of positions: vote on the document of each segment.
        let doc = |seg: &[u32]| {
            let mut v: Vec<u32> = seg
                .iter()
                .filter(|&&t| t >= 1000)
                .map(|t| t / 1000 - 1)
                .collect();
            v.sort();
            v[v.len() / 2]
        };
        let end = ids[sep + 1..].iter().position(|&t| t == 3).unwrap() + sep + 1;
        let (a, bb) = (doc(&ids[1..sep]), doc(&ids[sep + 1..end]));
        if b.pair_labels[0] == 1 {
            random += 1;
            assert_ne!(a, bb, "random next from the same document");
            assert_eq!(a / 4, bb / 4, "random next from another shard");
        } else {
            next += 1;
            assert_eq!(a, bb);
        }
    }
    assert!(random > 10 && next > 10, "{random} random, {next} next");
}

#[test]
fn a_sharded_stream_resumes_exactly_across_shard_and_epoch_boundaries() {
    let dir = temp("resume");
    let corpus = Arc::new(mapped_corpus(&dir, 4, 3));
    let tok = tokenizer();
    let new =
        || BatchStream::new(corpus.clone(), tok.clone(), settings(PairMode::Sop), 7, "t").unwrap();
    let mut a = new();
    let mut saved = vec![];
    let mut batches = vec![];
    for _ in 0..120 {
        saved.push(a.state());
        batches.push(a.next_batch(3).unwrap());
    }
    let epochs = a.state().epoch;
    assert!(epochs >= 2, "only {epochs} epoch(s) crossed");
    let shards: std::collections::BTreeSet<_> = saved.iter().map(|s| s.shard).collect();
    assert_eq!(shards.len(), 4, "positions in every shard");
    for at in [0, 1, 7, 31, 59, 90] {
        let mut b = new();
        b.restore(saved[at].clone()).unwrap();
        for (k, expected) in batches[at..].iter().enumerate() {
            assert_eq!(&b.next_batch(3).unwrap(), expected, "from {at}, batch {k}");
        }
    }
    // A position saved on other data is refused.
    let mut other = saved[5].clone();
    other.corpus = Some("cache:train:0000".into());
    let e = new().restore(other).err().unwrap();
    assert!(e.to_string().contains("--fresh"), "{e}");
}

/// An in-memory corpus is one shard, and a checkpoint of the old format (no shard fields)
/// restores to the same position.
#[test]
fn old_stream_states_restore() {
    let corpus: Arc<TokenCorpus> = Arc::new(numbered(0, 8).into());
    let tok = tokenizer();
    let mut a =
        BatchStream::new(corpus.clone(), tok.clone(), settings(PairMode::Sop), 2, "t").unwrap();
    for _ in 0..5 {
        a.next_batch(2).unwrap();
    }
    let mut json = serde_json::to_value(a.state()).unwrap();
    let o = json.as_object_mut().unwrap();
    o.remove("shard");
    o.remove("shard_rng");
    o.remove("corpus");
    let old: data::StreamState = serde_json::from_value(json).unwrap();
    let mut b = BatchStream::new(corpus, tok, settings(PairMode::Sop), 2, "t").unwrap();
    b.restore(old).unwrap();
    for _ in 0..20 {
        assert_eq!(a.next_batch(2).unwrap(), b.next_batch(2).unwrap());
    }
}
