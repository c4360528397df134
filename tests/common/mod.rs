//! Helpers shared by the integration tests that train on synthetic corpora.

// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use pretext::config::{
    Experiment, LoadedExperiment, ModelConfig, NormKind, Positions, PowerNormConfig,
};
use pretext::data::{Prepared, Tokenizer};
use pretext::model::Params;
use pretext::train::Trainer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

pub mod embedded;
pub mod finetuning;
pub mod trained;
pub mod values;

/// Cases per property of the fuzz targets: 2,000 in CI, `PROPTEST_CASES` to run more
/// (`PROPTEST_CASES=100000 cargo test --release --test fuzz`).
pub fn fuzz_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Every PNG a report's Markdown links (`![title](file.png)`), as written.
pub fn linked_images(md: &str) -> Vec<String> {
    md.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(link, _)| link.to_string()))
        .filter(|link| link.ends_with(".png"))
        .collect()
}

/// The `pretext` binary of this build, to be called as a user calls it.
pub fn pretext() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pretext"))
}

/// What a command printed, stdout then stderr: where a test looks for a message.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A new empty folder under the system's temporary folder, named after `tag`, the process
/// and a count of the calls: tests run in parallel threads, so no two calls share one (what
/// an earlier process of the same id left there is removed first).
pub fn scratch(tag: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pretext-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one run of an experiment file's text (`file` names it in errors).
pub fn experiment(text: &str, file: &str) -> Experiment {
    LoadedExperiment::from_str(text, Path::new(file))
        .unwrap()
        .runs
        .remove(0)
        .config
}

/// The words of the synthetic vocabulary: the five specials, then `w5`, `w6`, … up to `vocab`.
pub fn words(vocab: usize) -> Vec<String> {
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((5..vocab).map(|i| format!("w{i}")))
        .collect()
}

/// Documents of token ids over a vocabulary of `vocab` words (ids 0–4 are `[PAD]`, `[UNK]`,
/// `[CLS]`, `[SEP]`, `[MASK]`; the rest `w5`, `w6`, …), as the sampler reads them.
pub fn prepared(vocab: usize, docs: Vec<Vec<Vec<u32>>>, tag: &str) -> Prepared {
    let dir = scratch(&format!("synth-{tag}"));
    let path = dir.join("vocab.txt");
    std::fs::write(&path, words(vocab).join("\n")).unwrap();
    let tokenizer = Tokenizer::load(&path, true).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let sentences = docs.iter().map(Vec::len).sum();
    Prepared {
        tokenizer: Arc::new(tokenizer),
        train: Arc::new(docs.into()),
        heldout: Arc::new(Vec::new().into()),
        cache: None,
        train_sentences: sentences,
    }
}

/// Every parameter of a trainer's model, in order: what "bit-identical" compares.
pub fn weights(t: &Trainer) -> Vec<Vec<f32>> {
    t.bundle
        .named_params()
        .into_iter()
        .map(|(_, p)| p.to_vec())
        .collect()
}

/// A rayon pool of `n` threads, to run a step on a chosen thread count.
pub fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

/// Six steps of one run two ways, for the exact-resume tests to compare bit for bit.
pub struct Resumed {
    /// Losses and final weights of six steps of `one` on one thread.
    pub straight: (Vec<f64>, Vec<Vec<f32>>),
    /// The same six: three of `two` on two threads, saved, then three of `one` on one thread
    /// from that checkpoint.
    pub resumed: (Vec<f64>, Vec<Vec<f32>>),
    /// The precision the straight run's products ran in.
    pub precision: pretext::config::Precision,
    /// What the checkpoint after three steps says of its run.
    pub state: pretext::train::checkpoint::TrainState,
}

impl Resumed {
    /// The straight and the resumed run agree to the bit, losses and weights; `what` names
    /// the run in the failure.
    pub fn assert_bit_identical(&self, what: &str) {
        assert_eq!(
            self.straight.0, self.resumed.0,
            "{what}: losses depend on resume or thread count"
        );
        assert!(
            self.straight.1 == self.resumed.1,
            "{what}: weights depend on resume or thread count"
        );
    }
}

/// `Resumed` for `one` (one thread) and `two` (the same run on two threads) on `data`.
pub fn resume_across_threads(one: &Experiment, two: &Experiment, data: &Prepared) -> Resumed {
    let steps = |t: &mut Trainer, n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| t.train_step().unwrap().0.total_loss)
            .collect()
    };
    let (straight, precision) = pool(1).install(|| {
        let mut t = Trainer::new(one, data).unwrap();
        ((steps(&mut t, 6), weights(&t)), t.precision)
    });
    let ckpt = scratch("resume").join("step-3.safetensors");
    let mut losses = pool(2).install(|| {
        let mut t = Trainer::new(two, data).unwrap();
        let l = steps(&mut t, 3);
        t.save_checkpoint(&ckpt).unwrap();
        l
    });
    let state = pretext::train::checkpoint::open(&ckpt).unwrap().state;
    let weights_after = pool(1).install(|| {
        let mut t = Trainer::new(one, data).unwrap();
        t.load_checkpoint(&ckpt).unwrap();
        losses.extend(steps(&mut t, 3));
        weights(&t)
    });
    let _ = std::fs::remove_dir_all(ckpt.parent().unwrap());
    Resumed {
        straight,
        resumed: (losses, weights_after),
        precision,
        state,
    }
}

/// A module's running state as data: its name, its vectors by name, its counter.
pub type StateValues = (String, Vec<(&'static str, Vec<f32>)>, u64);

/// Every running state of `model` (PowerNorm's statistics).
pub fn running_states(model: &dyn Params) -> Vec<StateValues> {
    model
        .running_states()
        .into_iter()
        .map(|(module, s)| (module, s.vectors(), s.counter()))
        .collect()
}

/// A one-layer experiment that trains in a second, on the embedded corpus (`victim`: the
/// data-loss tests check that other commands leave its run intact).
pub const TINY_RUN: &str = r#"
name = "victim"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 300
[model]
layers = 1
hidden = 16
heads = 2
ffn = 32
max_positions = 32
[[objectives]]
name = "mlm"
[optimizer]
warmup_steps = 1
[training]
steps = 4
batch_size = 4
seq_len = 32
eval_every = 0
log_every = 2
checkpoint_every = 4
"#;

/// `pretext run <dir>/<file> --runs-dir <dir>/runs --reports-dir <dir>/reports --quiet`: an
/// experiment run as a user runs it, everything it writes kept under `dir`.
pub fn run_in(dir: &Path, file: &str) -> Command {
    let mut c = pretext();
    c.arg("run")
        .arg(dir.join(file))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .arg("--reports-dir")
        .arg(dir.join("reports"))
        .arg("--quiet");
    c
}

/// A finished pretraining run of `TINY_RUN`: `<dir>/runs/victim/base`.
pub fn pretrain_tiny(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("victim.toml"), TINY_RUN).unwrap();
    let o = run_in(dir, "victim.toml").output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    dir.join("runs/victim/base")
}

/// A GLUE SST-2 folder `<dir>/sst2` of `train` and `dev` labelled rows ("the film was bad|good
/// ."); `dev = 0` leaves dev.tsv with its header only.
pub fn sst2_folder(dir: &Path, train: usize, dev: usize) -> PathBuf {
    let glue = dir.join("sst2");
    std::fs::create_dir_all(&glue).unwrap();
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("the film was {} .\t{}\n", ["bad", "good"][i % 2], i % 2))
            .collect()
    };
    for (f, n) in [("train.tsv", train), ("dev.tsv", dev)] {
        std::fs::write(glue.join(f), format!("sentence\tlabel\n{}", rows(n))).unwrap();
    }
    glue
}

/// The model configuration `tests/fixtures/make_bert_fixture.py` writes (its HF parity
/// fixtures), also the small model of the encoder's gradient checks.
pub fn bert_tiny(norm: NormKind) -> ModelConfig {
    ModelConfig {
        preset: None,
        layers: 2,
        hidden: 32,
        heads: 4,
        ffn: 64,
        max_positions: 32,
        type_vocab: 2,
        dropout: 0.0,
        attention_dropout: 0.0,
        norm,
        layer_norm_eps: 1e-12,
        init_std: 0.02,
        powernorm: PowerNormConfig::default(),
        tie_word_embeddings: true,
        linear_bias: true,
        positions: Positions::Learned,
        init: None,
    }
}

/// The training-loop tests' experiment: a 2-layer H=32 model on the embedded corpus, 20 steps
/// of 8 × 32 tokens with gradient accumulation, checkpoints and evaluations every 10 steps, and
/// `extra` TOML (objectives, overrides) appended.
pub fn small_run(extra: &str) -> Experiment {
    let text = format!(
        r#"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 400
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 32
dropout = 0.1
attention_dropout = 0.1
[optimizer]
warmup_steps = 4
[training]
steps = 20
batch_size = 8
seq_len = 32
checkpoint_every = 10
eval_every = 10
eval_batches = 2
log_every = 5
grad_accum = 2
{extra}
"#
    );
    experiment(&text, "test.toml")
}

/// The data of `cfg`, with a tokenizer shared by the tests of this process that ask for the
/// same one. The file is named after the tokenizer settings: the quickstart test (vocabulary
/// 1,200) must never load the 400-token vocabulary another test saved first.
pub fn tokenized(cfg: &Experiment) -> Prepared {
    let t = &cfg.tokenizer;
    let dir = std::env::temp_dir().join(format!(
        "pretext-tok-{}/{}-{}-{}",
        std::process::id(),
        t.vocab_size,
        t.lowercase,
        t.min_frequency
    ));
    std::fs::create_dir_all(&dir).unwrap();
    pretext::data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), Some(&dir)).unwrap()
}
