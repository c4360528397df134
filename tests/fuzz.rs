//! Issue 8: property tests that feed arbitrary input to the parsers and loaders of user data
//! (experiment files, corpora, GLUE tsv, SQuAD json, CrowS-Pairs csv, HF config.json,
//! tokenizer files, weights, checkpoints). None may panic; every rejection must name its file.
//! CI runs 2,000 cases per property; `PROPTEST_CASES=100000 cargo test --release --test fuzz`
//! runs the full count.

mod common;

use pretext::config::{CorpusFormat, LoadedExperiment};
use pretext::data::corpus;
use pretext::model::io::{self, Naming};
use pretext::model::{Dev, Encoder};
use proptest::prelude::*;
use std::path::Path;

/// Fragments that make random text look like an experiment file often enough to reach deep.
fn toml_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[model]\n".to_string()),
        Just("[training]\n".to_string()),
        Just("[[objectives]]\n".to_string()),
        Just("[ablation]\n".to_string()),
        Just("[model.powernorm]\n".to_string()),
        Just("name = \"mlm\"\n".to_string()),
        Just("hidden = 100\n".to_string()),
        Just("heads = 0\n".to_string()),
        Just("norm = \"pre-ln\"\n".to_string()),
        Just("\"model.norm\" = [\"post-ln\", 3]\n".to_string()),
        Just("options = { mask_prob = 2 }\n".to_string()),
        Just("weight = -1e400\n".to_string()),
        Just("steps = 18446744073709551616\n".to_string()),
        Just("\"training.seed\" = []\n".to_string()),
        Just("é = \"ü\"\n".to_string()),
        Just("[[finetune]]\n".to_string()),
        Just("task = \"squad\"\n".to_string()),
        Just("init = [\"scratch\", \"probe\"]\n".to_string()),
        Just("mode = \"probe\"\n".to_string()),
        Just("seeds = []\n".to_string()),
        Just("max_seq_len = 4\n".to_string()),
        Just("budget = \"0.5min\"\n".to_string()),
        Just("batch_ramp = { start = 0, until = 2 }\n".to_string()),
        Just("short_phase = { seq_len = 1000, until = 0.5 }\n".to_string()),
        Just("linear_bias = false\ntie_word_embeddings = 0\n".to_string()),
        Just("positions = \"alibi\"\npositions = \"rope\"\n".to_string()),
        Just("options = { max_ngram = 11 }\n".to_string()),
        Just("name = \"electra\"\n".to_string()),
        Just("options = { discriminator_weight = nan, mask_prob = 0.3 }\n".to_string()),
        Just("options = { discriminator_weight = \"x\", max_ngram = 0 }\n".to_string()),
        Just("select_fraction = 0.2\nlr = [1e-4, 1e-4]\n".to_string()),
        Just("[ablation.recipe.r]\n\"training.batch_ramp\" = { start = 3 }\n".to_string()),
        "[a-z_.\"\\[\\]= 0-9\n{},-]{0,30}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn experiment_parser_never_panics(text in toml_like()) {
        if let Err(e) = LoadedExperiment::from_str(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().contains("fuzz.toml"), "{}", e);
        }
    }

    #[test]
    fn corpus_readers_never_panic(text in corpus_like(), fmt in 0..6usize, min in 0..4usize) {
        let format = [
            CorpusFormat::Auto, CorpusFormat::Text, CorpusFormat::Wikitext, CorpusFormat::Gutenberg,
            CorpusFormat::Wikiextractor, CorpusFormat::Jsonl,
        ][fmt];
        if let Err(e) = corpus::parse(&text, Path::new("fuzz.txt"), format, min) {
            prop_assert!(e.to_string().contains("fuzz.txt"), "{}", e);
        }
        // Sentence splitting of the same text never yields an empty sentence.
        prop_assert!(corpus::sentences(&text).all(|s| !s.trim().is_empty()));
    }

    /// Arbitrary bytes in a file (gzip-framed or not) through both file readers: never a panic,
    /// every refusal names the file, and the block reader agrees with the whole-file reader.
    #[test]
    fn corpus_files_never_panic(text in corpus_like(), junk in prop::collection::vec(any::<u8>(), 0..64), gz in any::<bool>(), fmt in 0..6usize) {
        let format = [
            CorpusFormat::Auto, CorpusFormat::Text, CorpusFormat::Wikitext, CorpusFormat::Gutenberg,
            CorpusFormat::Wikiextractor, CorpusFormat::Jsonl,
        ][fmt];
        let dir = common::scratch("fuzz-corpus");
        let path = dir.join("fuzz.txt");
        let mut bytes = text.into_bytes();
        bytes.extend(&junk);
        if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            bytes = e.finish().unwrap();
            // A truncated or corrupted stream half the time.
            if junk.len() % 2 == 1 && bytes.len() > 12 {
                let n = bytes.len();
                bytes.truncate(n - junk.len().min(n - 12));
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let whole = corpus::read_source("fuzz.txt", &dir, format, 1);
        if let Err(e) = &whole {
            prop_assert!(e.to_string().contains("fuzz.txt"), "{}", e);
        }
        let mut blocks = corpus::Blocks::open("fuzz.txt", &dir, format, 1, 64).unwrap();
        let mut streamed = Vec::new();
        let streamed = loop {
            match blocks.next_block() {
                Ok(Some(d)) => streamed.extend(d),
                Ok(None) => break Ok(streamed),
                Err(e) => {
                    prop_assert!(e.to_string().contains("fuzz.txt"), "{}", e);
                    break Err(e);
                }
            }
        };
        // Each case's folder goes (a CI run made thousands of them); a failing case keeps its
        // own for a look.
        let _ = std::fs::remove_dir_all(&dir);
        if let (Ok(w), Ok(s)) = (&whole, &streamed) {
            let texts = |d: &[corpus::Document]| d.iter().map(|d| d.sentences.clone()).collect::<Vec<_>>();
            // Auto-detection on a 64-byte first block may pick another layout than on the
            // whole file; with a stated layout both readers must agree.
            if fmt != 0 {
                prop_assert_eq!(texts(w), texts(s));
            }
        }
    }
}

/// Text with the marks each layout keys on, so random input reaches every parser's branches.
fn corpus_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<doc id=\"1\" url=\"u\" title=\"T\">\n".to_string()),
        Just("</doc>\n".to_string()),
        Just("Early life.\n".to_string()),
        Just("{\"text\": \"One. Two three.\\nFour.\"}\n".to_string()),
        Just("{\"text\": 3}\n".to_string()),
        Just("{\"title\": \"x\"}\n".to_string()),
        Just("{\"text\": \"unterminated\n".to_string()),
        Just(" = Title = \n".to_string()),
        Just(" = = Section = = \n".to_string()),
        Just("*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n".to_string()),
        Just("*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\n".to_string()),
        Just("CHAPTER ONE\r\n".to_string()),
        Just("\r\n".to_string()),
        Just("\n".to_string()),
        "[a-zA-Z .,!?\n]{0,40}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn weight_loader_refuses_corruption_without_panicking(
        cut in prop::option::of(0usize..20_000),
        flips in prop::collection::vec((0usize..20_000, any::<u8>()), 0..8),
    ) {
        thread_local! {
            static VALID: Vec<u8> = {
                let dev = Dev::seed_from_u64(0);
                let cfg = pretext::config::ModelConfig { layers: 1, hidden: 8, heads: 2, ffn: 16, max_positions: 8, ..Default::default() };
                io::to_bytes(&Encoder::new(&dev, &cfg, 30, &mut pretext::rng::stream(0, "fuzz")))
            };
        }
        let mut bytes = VALID.with(|v| v.clone());
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c % (bytes.len() + 1));
        }
        let dev = Dev::seed_from_u64(0);
        let cfg = pretext::config::ModelConfig { layers: 1, hidden: 8, heads: 2, ffn: 16, max_positions: 8, ..Default::default() };
        let mut enc = Encoder::new(&dev, &cfg, 30, &mut pretext::rng::stream(1, "fuzz"));
        if let Err(e) = io::load_bytes(&mut enc, &bytes, Path::new("fuzz.safetensors"), Naming::Pretext) {
            prop_assert!(e.to_string().contains("fuzz.safetensors"), "{}", e);
        }
    }
}

fn tiny_experiment() -> pretext::config::Experiment {
    let text = "[tokenizer]\nvocab_size = 120\n[model]\nlayers = 1\nhidden = 8\nheads = 2\nffn = 16\nmax_positions = 16\n[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"sop\"\n[optimizer]\nwarmup_steps = 1\n[training]\nsteps = 3\nbatch_size = 2\nseq_len = 16\n";
    LoadedExperiment::from_str(text, Path::new("t.toml"))
        .unwrap()
        .runs
        .remove(0)
        .config
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases() / 10, ..ProptestConfig::default() })]

    /// Truncated or corrupted training checkpoints are refused by name, never loaded, never a panic.
    #[test]
    fn checkpoint_loader_refuses_corruption_without_panicking(
        cut in prop::option::of(0usize..1_000_000),
        flips in prop::collection::vec((0usize..1_000_000, 1u8..=255), 1..6),
    ) {
        use pretext::train::Trainer;
        thread_local! {
            static SETUP: (pretext::config::Experiment, pretext::data::Prepared, Vec<u8>) = {
                let cfg = tiny_experiment();
                let data = pretext::data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), None).unwrap();
                let mut t = Trainer::new(&cfg, &data).unwrap();
                t.train_step().unwrap();
                let path = std::env::temp_dir().join(format!("pretext-fuzz-ckpt-{}.safetensors", std::process::id()));
                t.save_checkpoint(&path).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                std::fs::remove_file(&path).ok();
                (cfg, data, bytes)
            };
        }
        SETUP.with(|(cfg, data, valid)| {
            let mut bytes = valid.clone();
            for (at, x) in &flips {
                let n = bytes.len();
                bytes[at % n] ^= x; // a real change: x ≠ 0
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            let path = std::env::temp_dir().join(format!("pretext-fuzz-bad-{}.safetensors", std::process::id()));
            std::fs::write(&path, &bytes).unwrap();
            let mut t = Trainer::new(cfg, data).unwrap();
            let result = t.load_checkpoint(&path);
            std::fs::remove_file(&path).ok();
            match result {
                Err(e) => prop_assert!(e.to_string().contains("pretext-fuzz-bad"), "{}", e),
                // A flip can land in header whitespace or padding and change nothing that matters;
                // then the state must still be the one that was saved.
                Ok(()) => prop_assert_eq!(t.step, 1),
            }
            Ok(())
        })?;
    }
}

/// Rows that look like GLUE tsv often enough to get past the field count.
fn tsv_like() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("entailment".to_string()),
        Just("not_entailment".to_string()),
        Just("neutral".to_string()),
        Just("3.800".to_string()),
        Just("NaN".to_string()),
        Just("-1".to_string()),
        Just("index".to_string()),
        Just("\u{feff}Quality".to_string()),
        Just(String::new()),
        "[a-zé .,'\"]{0,12}",
    ];
    let row = prop::collection::vec(field, 0..12).prop_map(|f| f.join("\t"));
    prop::collection::vec(row, 0..8).prop_map(|r| r.join("\n"))
}

/// SQuAD-shaped JSON with arbitrary answer positions and texts, or arbitrary text.
fn squad_like() -> impl Strategy<Value = String> {
    let qa =
        (any::<String>(), "[a-z ]{0,6}", 0usize..60, any::<bool>()).prop_map(|(q, a, at, imp)| {
            serde_json::json!({"id": "q", "question": q, "is_impossible": imp,
            "answers": [{"text": a, "answer_start": at}]})
        });
    let para = ("[a-z .]{0,50}", prop::collection::vec(qa, 0..4))
        .prop_map(|(c, qas)| serde_json::json!({"context": c, "qas": qas}));
    let file = prop::collection::vec(prop::collection::vec(para, 0..3), 0..3).prop_map(|arts| {
        serde_json::json!({"data": arts.into_iter().map(|p| serde_json::json!({"title": "t", "paragraphs": p})).collect::<Vec<_>>()})
            .to_string()
    });
    prop_oneof![file, any::<String>(), "[\\[\\]{}:,\"a-z0-9 ]{0,40}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn glue_readers_never_panic(text in tsv_like(), task in 0..8usize) {
        use pretext::finetune::glue;
        let name = ["sst2", "cola", "mrpc", "rte", "wnli", "stsb", "qnli", "mnli"][task];
        let layout = glue::layout(name).unwrap();
        match glue::parse(&text, Path::new("fuzz.tsv"), &layout) {
            Ok(r) => prop_assert!(!r.examples.is_empty()),
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.tsv"), "{}", e),
        }
    }

    #[test]
    fn squad_reader_windows_and_decoder_never_panic(
        text in squad_like(),
        logits in prop::collection::vec(-5.0f32..5.0, 64),
        len in 6usize..24,
        stride in 1usize..12,
    ) {
        use pretext::finetune::squad;
        match squad::parse(&text, Path::new("fuzz.json")) {
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.json"), "{}", e),
            Ok(r) => {
                let special = pretext::data::Special { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 };
                let s = squad::WindowSettings { max_seq_len: len, doc_stride: stride, max_query_len: 4 };
                for (i, q) in r.questions.iter().enumerate() {
                    // One token per character: offsets that a real tokenizer could give.
                    let ctx: Vec<(u32, usize, usize)> = (0..q.context.chars().count()).map(|c| (5, c, c + 1)).collect();
                    let feats = squad::windows(i, q, &[7, 8], &ctx, special, &s);
                    prop_assert!(!feats.is_empty());
                    for f in &feats {
                        prop_assert!(f.ids.len() <= len.max(7));
                        prop_assert!(f.start <= f.end && f.end < f.ids.len());
                    }
                    let views: Vec<_> = feats.iter().map(|f| (f, &logits[..], &logits[..])).collect();
                    let answer = squad::best_answer(&q.context, &views, 20, 30);
                    prop_assert!(q.context.contains(&answer));
                }
            }
        }
    }

    #[test]
    fn crows_pairs_reader_never_panics(rows in prop::collection::vec(prop::collection::vec(crows_field(), 0..7), 0..6), header in any::<bool>()) {
        let mut text = if header { ",sent_more,sent_less,stereo_antistereo,bias_type\n".to_string() } else { String::new() };
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        match pretext::predict::bias::parse_pairs(text.as_bytes(), Path::new("fuzz.csv")) {
            Ok(p) => prop_assert!(!p.is_empty() && p.iter().all(|p| !p.more.is_empty() && !p.less.is_empty())),
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.csv"), "{}", e),
        }
    }
}

/// HF `config.json` texts: BERT's keys with odd values, other model types, broken JSON.
fn hf_config_like() -> impl Strategy<Value = String> {
    let num = prop_oneof![
        (0u64..2000).prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("\"12\"".to_string()),
        Just("null".to_string()),
        Just("18446744073709551615".to_string()),
    ];
    let keys = [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
        "vocab_size",
        "layer_norm_eps",
        "pad_token_id",
        "embedding_size",
    ];
    let fields = prop::collection::vec((0..keys.len(), num), 0..10);
    let extra = prop_oneof![
        Just(String::new()),
        Just(r#""model_type": "roberta","#.to_string()),
        Just(r#""model_type": "roberta-prelayernorm","#.to_string()),
        Just(r#""model_type": "electra","#.to_string()),
        Just(r#""hidden_act": "relu","#.to_string()),
        Just(r#""position_embedding_type": "relative_key","#.to_string()),
        Just(r#""tie_word_embeddings": 3,"#.to_string()),
    ];
    let json = (fields, extra).prop_map(move |(f, extra)| {
        let body: Vec<String> = f
            .iter()
            .map(|(k, v)| format!("\"{}\": {v}", keys[*k]))
            .collect();
        format!("{{{extra}{}}}", body.join(", "))
    });
    prop_oneof![json, any::<String>(), "[\\[\\]{}:,\"a-z0-9 ]{0,40}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn hf_config_reader_never_panics(text in hf_config_like(), vocab in 0usize..3000) {
        match pretext::hf::import::parse_config(&text, Path::new("fuzz/config.json")) {
            Ok(c) => {
                let _ = c.mismatches(&pretext::config::ModelConfig::default(), Some(vocab));
                let _ = c.model_config();
            }
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz/config.json"), "{}", e),
        }
    }
}

/// CSV fields as CrowS-Pairs has them: quoted sentences with commas, bare words, broken quotes.
fn crows_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"He said, \"\"no\"\".\"".to_string()),
        Just("stereo".to_string()),
        Just("gender".to_string()),
        Just("\"unterminated".to_string()),
        Just(String::new()),
        "[a-zé ,.'\"]{0,12}",
    ]
}

/// The text of a small WordPiece `tokenizer.json` (saved by pretext) and of its `vocab.txt`.
fn tokenizer_texts() -> &'static (String, String) {
    static TEXTS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let dir = common::scratch("fuzz-tokenizer-base");
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nfilm\n##s\nwas\ngood\n";
        std::fs::write(dir.join("vocab.txt"), vocab).unwrap();
        let tok = pretext::data::Tokenizer::load(&dir.join("vocab.txt"), true).unwrap();
        tok.save(&dir.join("tokenizer.json")).unwrap();
        let json = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (json, vocab.to_string())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    /// A tokenizer file edited by hand: characters replaced at random places (ids moved,
    /// brackets broken, lines repeated or cut). Loading refuses by file or gives a tokenizer
    /// whose every id is a row of the embedding, which encodes without panicking.
    #[test]
    fn tokenizer_loader_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[0-9\"{}\\[\\],: a-z#\n]{0,3}"), 0..4),
        txt in any::<bool>(),
    ) {
        let (json, vocab) = tokenizer_texts();
        let mut text = if txt { vocab.clone() } else { json.clone() };
        for (at, with) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            let mut j = (i + with.len().max(1)).min(text.len());
            while !text.is_char_boundary(j) { j -= 1; }
            text.replace_range(i..j.max(i), &with);
        }
        let dir = common::scratch("fuzz-tokenizer");
        let file = dir.join(if txt { "vocab.txt" } else { "tokenizer.json" });
        std::fs::write(&file, &text).unwrap();
        let loaded = pretext::data::Tokenizer::load(&file, true);
        let _ = std::fs::remove_dir_all(&dir);
        match loaded {
            Ok(tok) => {
                let n = tok.vocab_size();
                prop_assert!(tok.encode("the films was good [MASK] .").iter().all(|&id| (id as usize) < n));
            }
            Err(e) => prop_assert!(e.to_string().starts_with(file.to_str().unwrap()), "{}", e),
        }
    }
}
