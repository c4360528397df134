//! Issue 2: the data pipeline's statistics, invariants and errors.

mod common;

use pretext::config::CorpusFormat;
use pretext::data::corpus::{self, parse, CorpusError, EMBEDDED};
use pretext::data::instances::{create_instances, PairMode};
use pretext::data::{BatchStream, MaskingConfig, Shard, StreamSettings, TokenCorpus, Tokenizer};
use std::path::Path;
use std::sync::Arc;

fn embedded_docs() -> Vec<corpus::Document> {
    parse(EMBEDDED, Path::new("<embedded>"), CorpusFormat::Auto, 2).unwrap()
}

/// One tokenizer for every test (training it takes a while).
type Shared = (Arc<Tokenizer>, Arc<TokenCorpus>);

fn setup() -> Shared {
    static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let docs = embedded_docs();
            let tok = Tokenizer::train(
                docs.iter()
                    .flat_map(|d| d.sentences.iter().map(String::as_str)),
                800,
                true,
                2,
            )
            .unwrap();
            let ids: Vec<_> = docs
                .iter()
                .map(|d| tok.encode_batch(&d.sentences))
                .collect();
            (Arc::new(tok), Arc::new(ids.into()))
        })
        .clone()
}

fn stream(
    mode: PairMode,
    masking: Option<MaskingConfig>,
    seed: u64,
) -> (Arc<Tokenizer>, BatchStream) {
    let (tok, docs) = setup();
    let s = StreamSettings {
        seq_len: 64,
        short_seq_prob: 0.1,
        mode,
        masking,
    };
    let bs = BatchStream::new(docs, tok.clone(), s, seed, "data.train").unwrap();
    (tok, bs)
}

#[test]
fn embedded_corpus_has_documents_and_sentences() {
    let docs = embedded_docs();
    assert!(docs.len() >= 20, "{} documents", docs.len());
    let sentences: usize = docs.iter().map(|d| d.sentences.len()).sum();
    assert!(sentences > 150, "{sentences} sentences");
    assert!(docs[0].sentences[0].starts_with("Rivers begin"));
}

#[test]
fn masking_statistics_match_bert_on_100k_tokens() {
    let (tok, mut bs) = stream(PairMode::Sop, Some(MaskingConfig::default()), 7);
    let sp = tok.special;
    let (mut candidates, mut chosen, mut as_mask, mut as_random, mut kept) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    while candidates < 100_000 {
        let b = bs.next_batch(32).unwrap();
        for (i, &m) in b.attention_mask.iter().enumerate() {
            let t = b.input_ids[i];
            if m > 0.0 && t != sp.cls && t != sp.sep {
                candidates += 1;
            }
        }
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            chosen += 1;
            let now = b.input_ids[p];
            if now == sp.mask {
                as_mask += 1;
            } else if now == label {
                kept += 1;
            } else {
                as_random += 1;
            }
        }
    }
    let rate = chosen as f64 / candidates as f64;
    assert!((rate - 0.15).abs() < 0.01, "masked share {rate}");
    let f = |n: usize| n as f64 / chosen as f64;
    assert!(
        (f(as_mask) - 0.8).abs() < 0.01,
        "[MASK] share {}",
        f(as_mask)
    );
    assert!(
        (f(as_random) - 0.1).abs() < 0.01,
        "random share {}",
        f(as_random)
    );
    assert!((f(kept) - 0.1).abs() < 0.01, "kept share {}", f(kept));
}

#[test]
fn special_tokens_are_never_masked_and_labels_are_real_tokens() {
    let (tok, mut bs) = stream(
        PairMode::Nsp,
        Some(MaskingConfig {
            whole_word: true,
            ..Default::default()
        }),
        3,
    );
    let sp = tok.special;
    for _ in 0..50 {
        let b = bs.next_batch(16).unwrap();
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            assert!(b.attention_mask[p] > 0.0, "masked a padding position");
            assert!(p % b.seq_len != 0, "masked [CLS]");
            assert!(
                !sp.contains(label) || label == sp.unk,
                "label {label} is a special token"
            );
        }
        // Every [CLS]/[SEP]/[PAD] in the input is where the instance put it: row starts with
        // [CLS], and no predicted position holds a special token's original.
        for row in 0..b.size {
            assert_eq!(b.input_ids[row * b.seq_len], sp.cls);
        }
    }
}

#[test]
fn whole_word_masking_masks_all_pieces_of_a_word() {
    let (tok, mut bs) = stream(
        PairMode::Single,
        Some(MaskingConfig {
            whole_word: true,
            ..Default::default()
        }),
        11,
    );
    let mut checked = 0;
    for _ in 0..40 {
        let b = bs.next_batch(16).unwrap();
        let chosen: std::collections::HashSet<usize> = b.mlm_positions.iter().copied().collect();
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            // A chosen continuation piece implies its predecessor was chosen too.
            if tok.is_continuation(label) {
                assert!(
                    chosen.contains(&(p - 1)),
                    "## piece masked without its word start"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "the corpus produced no multi-piece words; the test would prove nothing"
    );
}

#[test]
fn pair_labels_are_balanced() {
    for mode in [PairMode::Nsp, PairMode::Sop] {
        let (_, mut bs) = stream(mode, None, 5);
        let mut ones = 0;
        let n = 4000;
        for _ in 0..n / 40 {
            let b = bs.next_batch(40).unwrap();
            assert_eq!(b.pair_labels.len(), 40);
            ones += b.pair_labels.iter().filter(|&&l| l == 1).count();
        }
        let share = ones as f64 / n as f64;
        assert!(
            (share - 0.5).abs() < 0.03,
            "{mode:?}: label-1 share {share}"
        );
    }
}

/// Each document is a run of increasing single-token sentences in its own id range, so
/// order and provenance can be read off the ids.
fn numbered_docs() -> Vec<Vec<Vec<u32>>> {
    (0..20u32)
        .map(|d| (0..30u32).map(|s| vec![1000 * (d + 1) + s]).collect())
        .collect()
}

#[test]
fn sop_swaps_and_nsp_draws_from_another_document() {
    let docs = numbered_docs();
    let order: Vec<usize> = (0..docs.len()).collect();
    let shard = Shard::Memory(docs);
    let mut rng = pretext::rng::stream(1, "test");
    let doc_of = |t: u32| t / 1000;
    for inst in create_instances(&shard, &order, 16, 0.0, PairMode::Sop, &mut rng) {
        let (amax, amin) = (*inst.a.iter().max().unwrap(), *inst.a.iter().min().unwrap());
        let (bmax, bmin) = (*inst.b.iter().max().unwrap(), *inst.b.iter().min().unwrap());
        match inst.pair_label {
            Some(0) => assert!(amax < bmin, "in-order pair out of order: {inst:?}"),
            Some(1) => assert!(amin > bmax, "swapped pair not swapped: {inst:?}"),
            other => panic!("unexpected label {other:?}"),
        }
    }
    for inst in create_instances(&shard, &order, 16, 0.0, PairMode::Nsp, &mut rng) {
        let same = doc_of(inst.a[0]) == doc_of(inst.b[0]);
        match inst.pair_label {
            Some(0) => assert!(
                same && inst.a.iter().max() < inst.b.iter().min(),
                "{inst:?}"
            ),
            Some(1) => assert!(!same, "random-next B from the same document: {inst:?}"),
            other => panic!("unexpected label {other:?}"),
        }
    }
}

#[test]
fn sequences_never_exceed_seq_len() {
    let (tok, docs) = setup();
    for mode in [PairMode::Single, PairMode::Nsp, PairMode::Sop] {
        for seq_len in [8, 17, 64] {
            let order: Vec<usize> = (0..docs.documents()).collect();
            let mut rng = pretext::rng::stream(2, "test");
            for inst in create_instances(&docs.shards[0], &order, seq_len, 0.3, mode, &mut rng) {
                assert!(
                    inst.len() <= seq_len,
                    "{mode:?} seq_len {seq_len}: instance of {}",
                    inst.len()
                );
            }
            let s = StreamSettings {
                seq_len,
                short_seq_prob: 0.3,
                mode,
                masking: Some(MaskingConfig::default()),
            };
            let mut bs = BatchStream::new(docs.clone(), tok.clone(), s, 9, "t").unwrap();
            let b = bs.next_batch(8).unwrap();
            assert_eq!(b.input_ids.len(), 8 * seq_len);
            for row in 0..8 {
                let real = &b.attention_mask[row * seq_len..(row + 1) * seq_len];
                let last_sep = b.input_ids[row * seq_len..(row + 1) * seq_len]
                    .iter()
                    .rposition(|&t| t == tok.special.sep);
                let n_real = real.iter().filter(|&&m| m > 0.0).count();
                assert_eq!(
                    last_sep,
                    Some(n_real - 1),
                    "row must end in [SEP] before padding"
                );
            }
        }
    }
}

#[test]
fn same_seed_gives_identical_batches_and_resume_continues_exactly() {
    let (_, mut a) = stream(PairMode::Sop, Some(MaskingConfig::default()), 21);
    let (_, mut b) = stream(PairMode::Sop, Some(MaskingConfig::default()), 21);
    let (_, mut c) = stream(PairMode::Sop, Some(MaskingConfig::default()), 22);
    let per_epoch = a.instances_per_epoch();
    // Cross an epoch boundary too.
    let steps = per_epoch / 16 + 3;
    let mut differs = false;
    for step in 0..steps {
        let (x, y, z) = (
            a.next_batch(16).unwrap(),
            b.next_batch(16).unwrap(),
            c.next_batch(16).unwrap(),
        );
        assert!(x == y, "same seed, different batch at step {step}");
        differs |= x != z;
    }
    assert!(differs, "a different seed produced the same batches");
    let saved = a.state();
    let expected: Vec<_> = (0..steps).map(|_| a.next_batch(16).unwrap()).collect();
    let (_, mut resumed) = stream(PairMode::Sop, Some(MaskingConfig::default()), 21);
    resumed.restore(saved).unwrap();
    let got: Vec<_> = (0..steps)
        .map(|_| resumed.next_batch(16).unwrap())
        .collect();
    assert!(expected == got, "resumed stream diverged");
}

#[test]
fn bad_corpus_inputs_give_named_errors() {
    let dir = common::scratch("corpus");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "  \n\n").unwrap();
    let e = corpus::read_source("empty.txt", &dir, CorpusFormat::Auto, 2).unwrap_err();
    assert_eq!(
        e,
        CorpusError::Empty {
            file: empty.clone()
        }
    );
    assert!(e.to_string().contains("empty.txt"));

    let bad = dir.join("latin1.txt");
    std::fs::write(&bad, b"Fine text here.\nCaf\xe9 au lait.\n").unwrap();
    let e = corpus::read_source("latin1.txt", &dir, CorpusFormat::Auto, 2).unwrap_err();
    assert_eq!(
        e,
        CorpusError::InvalidUtf8 {
            file: bad,
            offset: 19
        }
    );
    assert!(e.to_string().contains("byte offset 19"), "{e}");

    let short = dir.join("short.txt");
    std::fs::write(&short, "One sentence only.\n\nAnother lonely one.\n").unwrap();
    let e = corpus::read_source("short.txt", &dir, CorpusFormat::Text, 2).unwrap_err();
    assert!(
        matches!(
            e,
            CorpusError::NoUsableDocuments {
                documents: 2,
                min_sentences: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("short.txt") && e.to_string().contains("min_sentences"));

    let e = corpus::read_source("missing.txt", &dir, CorpusFormat::Auto, 2).unwrap_err();
    assert!(matches!(e, CorpusError::Unreadable { .. }) && e.to_string().contains("missing.txt"));

    let e = pretext::data::Corpus::split(embedded_docs()[..1].to_vec(), 0.5).unwrap_err();
    assert!(
        matches!(e, CorpusError::NoTrainingDocuments { total: 1, .. }),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn vocab_txt_without_special_tokens_is_refused_by_name() {
    let dir = common::scratch("vocab");
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\n##s\n").unwrap();
    let e = Tokenizer::load(&vocab, true).unwrap_err();
    assert!(
        e.to_string().contains("[MASK]") && e.to_string().contains("vocab.txt"),
        "{e}"
    );
    std::fs::write(
        &vocab,
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n##s\n",
    )
    .unwrap();
    let tok = Tokenizer::load(&vocab, true).unwrap();
    assert_eq!(tok.encode("The cats"), vec![5, 6, 7]);
    assert!(tok.is_continuation(7) && !tok.is_continuation(6));
    // Round trip through tokenizer.json.
    let json = dir.join("tokenizer.json");
    tok.save(&json).unwrap();
    assert_eq!(
        Tokenizer::load(&json, true).unwrap().encode("the cats"),
        vec![5, 6, 7]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn heldout_split_is_by_document_and_deterministic() {
    let docs = embedded_docs();
    let a = pretext::data::Corpus::split(docs.clone(), 0.2).unwrap();
    let b = pretext::data::Corpus::split(docs.clone(), 0.2).unwrap();
    assert_eq!(a.heldout, b.heldout);
    // Evenly spread: 0.2 of 26 documents is 5, one in each fifth of the corpus.
    assert_eq!(a.heldout.len(), 5);
    let at: Vec<usize> = a
        .heldout
        .iter()
        .map(|h| docs.iter().position(|d| d == h).unwrap())
        .collect();
    assert_eq!(at, [2, 7, 12, 17, 22]);
    assert_eq!(a.heldout.len() + a.train.len(), docs.len());
    for h in &a.heldout {
        assert!(!a.train.contains(h));
    }
}

/// The real corpora in ../shared/data, when this checkout has them beside it.
#[test]
fn reads_wikitext_and_gutenberg_layouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !root.exists() {
        eprintln!("skipping: ../shared/data is not beside this checkout");
        return;
    }
    let wiki = corpus::read_source("wikitext-2/valid.txt", &root, CorpusFormat::Auto, 2).unwrap();
    assert!(
        wiki.len() >= 55 && wiki.len() <= 70,
        "{} WikiText valid articles",
        wiki.len()
    );
    assert!(wiki
        .iter()
        .all(|d| d.sentences.iter().all(|s| !s.starts_with("= ="))));
    let grimm =
        corpus::read_source("gutenberg/grimm-tales.txt", &root, CorpusFormat::Auto, 2).unwrap();
    assert!(grimm.len() >= 40, "{} tales", grimm.len());
    assert!(grimm
        .iter()
        .all(|d| d.sentences.iter().all(|s| !s.contains("PROJECT GUTENBERG"))));
    let japanese = corpus::read_source(
        "gutenberg/japanese-fairy-tales.txt",
        &root,
        CorpusFormat::Auto,
        2,
    )
    .unwrap();
    assert!(japanese.len() >= 15, "{} tales", japanese.len());
}

/// ALBERT's n-gram masking (`max_ngram = 3`): spans of n units with probability
/// `(1/n) / (1 + 1/2 + 1/3)` = 6/11, 3/11, 2/11, at the same masked share as single tokens.
/// One long sequence at a 5 % rate: two spans rarely touch, so runs of consecutive masked
/// positions are spans, and the budget's last few slots barely bias the lengths.
#[test]
fn ngram_masking_draws_albert_span_lengths_at_the_same_rate() {
    use pretext::data::masking::mask_tokens;
    use pretext::data::Special;
    use rand::{Rng, SeedableRng};
    let cfg = MaskingConfig {
        mask_prob: 0.05,
        max_ngram: 3,
        ..Default::default()
    };
    let special = Special {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let n = 200_000;
    let mut tokens: Vec<u32> = (0..n).map(|_| rng.gen_range(5..1000)).collect();
    let masked = mask_tokens(&mut tokens, &cfg, &special, 1000, &|_| false, &mut rng);
    let rate = masked.positions.len() as f64 / n as f64;
    assert!((rate - 0.05).abs() < 0.001, "masked share {rate}");
    let mut runs = [0usize; 8];
    let mut run = 0;
    for (k, &p) in masked.positions.iter().enumerate() {
        run += 1;
        if masked.positions.get(k + 1) != Some(&(p + 1)) {
            runs[run.min(7)] += 1;
            run = 0;
        }
    }
    let spans: usize = runs.iter().sum();
    let share = |n: usize| runs[n] as f64 / spans as f64;
    for (n, want) in [(1, 6.0 / 11.0), (2, 3.0 / 11.0), (3, 2.0 / 11.0)] {
        assert!(
            (share(n) - want).abs() < 0.03,
            "spans of {n}: {} of runs, want {want}; runs {runs:?}",
            share(n)
        );
    }
    assert!(
        runs[4..].iter().sum::<usize>() * 20 < spans,
        "runs {runs:?}"
    );
    // Without n-grams the same draw masks single tokens: runs of two are chance adjacencies.
    let single = MaskingConfig {
        max_ngram: 1,
        ..cfg
    };
    let mut tokens: Vec<u32> = (0..n).map(|_| rng.gen_range(5..1000)).collect();
    let masked = mask_tokens(&mut tokens, &single, &special, 1000, &|_| false, &mut rng);
    let adjacent = masked
        .positions
        .windows(2)
        .filter(|w| w[1] == w[0] + 1)
        .count();
    assert!((adjacent as f64 / masked.positions.len() as f64) < 0.07);
}

#[test]
fn max_ngram_outside_its_range_is_refused() {
    for n in [0usize, 11] {
        let cfg = MaskingConfig {
            max_ngram: n,
            ..Default::default()
        };
        assert!(cfg.check().unwrap_err().contains("max_ngram"));
    }
}

/// The same text gives the same vocabulary in every process (`data::wordpiece`): two
/// processes train byte-identical tokenizer files. The `tokenizers` crate's own training gave
/// four different files in four processes here (ties between merges broken through randomly
/// seeded hash maps, huggingface/tokenizers#1794).
#[test]
fn wordpiece_training_gives_one_vocabulary_in_every_process() {
    let dir = common::scratch("wordpiece");
    let train = |name: &str| {
        let out = dir.join(name);
        let o = common::pretext()
            .args([
                "tokenizer",
                "train",
                "--corpus",
                "embedded",
                "--vocab-size",
                "900",
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    };
    let first = train("a.json");
    for other in ["b.json", "c.json"] {
        assert!(first == train(other), "{other} differs from a.json");
    }
    // In this process too, and with the same vocabulary as the files.
    let docs = embedded_docs();
    let texts = || {
        docs.iter()
            .flat_map(|d| d.sentences.iter().map(String::as_str))
    };
    let a = Tokenizer::train(texts(), 900, true, 2).unwrap();
    let b = Tokenizer::train(texts(), 900, true, 2).unwrap();
    let saved = Tokenizer::load(&dir.join("a.json"), true).unwrap();
    for id in 0..a.vocab_size() as u32 {
        assert_eq!(a.id_to_token(id), b.id_to_token(id), "id {id}");
        assert_eq!(a.id_to_token(id), saved.id_to_token(id), "id {id}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
