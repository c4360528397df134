//! Issue 9: the shard cache as runs use it — built once, reused by every seed and rebuilt when
//! the corpus changes, built by two runs at once, trained on with a bit-identical resume, and
//! its settings validated.

mod common;

use pretext::config::{CorpusFormat, Experiment, LoadedExperiment};
use pretext::data::cache::held_out;
use pretext::data::corpus::read_source;
use pretext::data::{self, TokenCorpus, TokenDoc};
use pretext::train::Trainer;
use std::path::{Path, PathBuf};

fn cached_experiment(corpus: &str, extra: &str) -> Experiment {
    let text = format!(
        r#"
[data]
corpus = [{corpus}]
cache = true
shard_tokens = 2000
[tokenizer]
vocab_size = 400
[model]
layers = 1
hidden = 32
heads = 2
ffn = 64
max_positions = 32
[optimizer]
warmup_steps = 2
[training]
steps = 12
batch_size = 4
seq_len = 32
checkpoint_every = 6
eval_every = 6
eval_batches = 2
[[objectives]]
name = "mlm"
[[objectives]]
name = "nsp"
{extra}
"#
    );
    common::experiment(&text, "test.toml")
}

fn cache_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn the_cache_is_built_once_reused_by_every_seed_and_rebuilt_when_the_corpus_changes() {
    let dir = common::scratch("cache-build");
    let text = pretext::data::corpus::EMBEDDED.repeat(3);
    std::fs::write(dir.join("corpus.txt"), &text).unwrap();
    let cfg = cached_experiment("\"corpus.txt\"", "");
    let prep = |_seed: u64| data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir)).unwrap();
    let first = prep(1);
    let (cache_dir, built) = first.cache.clone().unwrap();
    assert!(built);
    assert!(cache_dir.join("manifest.json").exists());
    assert!(
        first.train.shards.len() >= 3,
        "{} shards",
        first.train.shards.len()
    );

    // The cached splits hold exactly the tokens of an in-memory read split by the same rule.
    let docs = read_source("corpus.txt", &dir, CorpusFormat::Auto, 2).unwrap();
    let tok = &first.tokenizer;
    let (mut train, mut heldout) = (vec![], vec![]);
    for (k, d) in docs.iter().enumerate() {
        let ids: TokenDoc = tok
            .encode_batch(&d.sentences)
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            continue;
        }
        if held_out(k, cfg.data.heldout_fraction) {
            heldout.push(ids);
        } else {
            train.push(ids);
        }
    }
    let flatten = |c: &TokenCorpus| -> Vec<TokenDoc> {
        c.shards
            .iter()
            .flat_map(|s| {
                (0..s.documents()).map(move |d| {
                    (0..s.sentences(d))
                        .map(|i| s.sentence(d, i).to_vec())
                        .collect()
                })
            })
            .collect()
    };
    assert_eq!(flatten(&first.train), train);
    assert_eq!(flatten(&first.heldout), heldout);
    assert!(!heldout.is_empty());

    // Another seed (another run of a grid) reuses it: nothing is rewritten.
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = stamp(&cache_dir.join("train-00000.bin"));
    let second = prep(2);
    assert_eq!(second.cache, Some((cache_dir.clone(), false)));
    assert_eq!(before, stamp(&cache_dir.join("train-00000.bin")));
    assert_eq!(cache_dirs(&dir.join("cache")), vec![cache_dir.clone()]);

    // A corrupted shard is an error naming it.
    let shard = cache_dir.join("train-00001.bin");
    let good = std::fs::read(&shard).unwrap();
    let mut bad = good.clone();
    bad[40] ^= 0x10;
    std::fs::write(&shard, &bad).unwrap();
    let e = data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir))
        .err()
        .unwrap();
    assert!(e.to_string().contains("train-00001.bin"), "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
    std::fs::write(&shard, &good).unwrap();

    // A changed corpus gets a cache of its own, next to the old one.
    std::fs::write(
        dir.join("corpus.txt"),
        text + "\nOne more document. It has two sentences.\n",
    )
    .unwrap();
    let third = prep(1);
    let (new_dir, built) = third.cache.unwrap();
    assert!(built);
    assert_ne!(new_dir, cache_dir);
    assert_eq!(cache_dirs(&dir.join("cache")).len(), 2);
    // No temporary build folder is left behind.
    assert!(cache_dirs(&dir.join("cache"))
        .iter()
        .all(|p| !p.to_string_lossy().contains("building")));
}

#[test]
fn two_runs_building_one_cache_at_once_both_succeed() {
    let dir = common::scratch("cache-race");
    std::fs::write(
        dir.join("corpus.txt"),
        pretext::data::corpus::EMBEDDED.repeat(2),
    )
    .unwrap();
    let cfg = cached_experiment("\"corpus.txt\"", "");
    // The tokenizer first (as `pretext run` does), then two builders race on the cache.
    data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir)).unwrap();
    std::fs::remove_dir_all(dir.join("cache")).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let h: Vec<_> = (0..2)
            .map(|_| s.spawn(|| data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir))))
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let dirs: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap().cache.unwrap().0)
        .collect();
    assert_eq!(dirs[0], dirs[1]);
    assert_eq!(cache_dirs(&dir.join("cache")), vec![dirs[0].clone()]);
}

#[test]
fn training_on_a_cached_corpus_resumes_bit_identically() {
    let dir = common::scratch("cache-train");
    std::fs::write(
        dir.join("corpus.txt"),
        pretext::data::corpus::EMBEDDED.repeat(3),
    )
    .unwrap();
    let cfg = cached_experiment("\"corpus.txt\"", "");
    let data = data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir)).unwrap();
    assert!(data.train.shards.len() >= 3);
    let mut straight = Trainer::new(&cfg, &data).unwrap();
    let full: Vec<f64> = (0..12)
        .map(|_| straight.train_step().unwrap().0.total_loss)
        .collect();
    assert!(full.iter().all(|l| l.is_finite()));
    assert!(
        straight.evaluate().unwrap().is_some(),
        "held-out shards evaluate"
    );

    let ckpt = dir.join("ckpt.safetensors");
    let mut first = Trainer::new(&cfg, &data).unwrap();
    let mut halves: Vec<f64> = (0..6)
        .map(|_| first.train_step().unwrap().0.total_loss)
        .collect();
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    // A new process would open the cache again: so does this.
    let reopened = data::prepare(&cfg.data, &cfg.tokenizer, &dir, Some(&dir)).unwrap();
    assert!(!reopened.cache.as_ref().unwrap().1, "the cache is reused");
    let mut second = Trainer::new(&cfg, &reopened).unwrap();
    second.load_checkpoint(&ckpt).unwrap();
    halves.extend((0..6).map(|_| second.train_step().unwrap().0.total_loss));
    assert_eq!(full, halves);
    assert!(common::weights(&straight) == common::weights(&second));
}

#[test]
fn cache_settings_are_validated() {
    let bad = |extra: &str| {
        let text = format!("[data]\n{extra}\n[[objectives]]\nname = \"mlm\"\n");
        LoadedExperiment::from_str(&text, Path::new("x.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(bad("cache = true\nshard_tokens = 10").contains("data.shard_tokens"));
    assert!(bad("cache_dir = \"c\"").contains("data.cache_dir"));
}
