//! Issue 8 (first part): property tests that feed arbitrary input to the parsers and loaders
//! of user data. None may panic; every rejection must name its file.
//! CI runs 2,000 cases per property; `PROPTEST_CASES=100000 cargo test --release --test fuzz`
//! runs the full count.

use pretext::config::{CorpusFormat, LoadedExperiment};
use pretext::data::corpus;
use pretext::model::io::{self, Naming};
use pretext::model::{Dev, Encoder};
use proptest::prelude::*;
use std::path::Path;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

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
        "[a-z_.\"\\[\\]= 0-9\n{},-]{0,30}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn experiment_parser_never_panics(text in toml_like()) {
        if let Err(e) = LoadedExperiment::from_str(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().contains("fuzz.toml"), "{}", e);
        }
    }

    #[test]
    fn corpus_readers_never_panic(text in any::<String>(), fmt in 0..4usize, min in 0..4usize) {
        let format = [CorpusFormat::Auto, CorpusFormat::Text, CorpusFormat::Wikitext, CorpusFormat::Gutenberg][fmt];
        if let Err(e) = corpus::parse(&text, Path::new("fuzz.txt"), format, min) {
            prop_assert!(e.to_string().contains("fuzz.txt"), "{}", e);
        }
        // Sentence splitting of the same text never yields an empty sentence.
        prop_assert!(corpus::sentences(&text).all(|s| !s.trim().is_empty()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

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
    #![proptest_config(ProptestConfig { cases: cases() / 10, ..ProptestConfig::default() })]

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
                let data = pretext::data::prepare(&cfg.data, &cfg.tokenizer, 1, Path::new("."), None).unwrap();
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
