//! Issue 6: downstream evaluation — readers on the real GLUE and SQuAD files, fine-tuning
//! that learns, probes that leave the encoder frozen, pretrained initialisation that is the
//! pretraining checkpoint, an empty dev split refused (SQuAD's windows, decoding and the span
//! head are `tests/squad.rs`).

mod common;

use common::finetuning::{job, sentiment, tiny_model, tokenizer, FILLER};
use pretext::config::{FinetuneSpec, Init, LoadedExperiment, Mode};
use pretext::data;
use pretext::finetune::data::Splits;
use pretext::finetune::glue::Label;
use pretext::finetune::head::Head;
use pretext::finetune::task::{self, Kind};
use pretext::finetune::{self, squad, Source};
use pretext::model::{Dev, Encoder, Params};
use pretext::rng::stream;
use pretext::train::Trainer;
use std::path::Path;

const SHARED: &str = "../shared/data";

fn shared() -> Option<&'static Path> {
    let p = Path::new(SHARED);
    if p.join("glue").is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: {SHARED} is not here");
        None
    }
}

#[test]
fn readers_read_the_real_glue_and_squad_files() {
    let Some(root) = shared() else { return };
    let read = |t: &str, dir: &str, file: &str| {
        let layout = task::find(t).unwrap().layout.unwrap();
        finetune::glue::read(&root.join("glue").join(dir).join(file), &layout).unwrap()
    };
    let sst = read("sst2", "SST-2", "train.tsv");
    assert_eq!((sst.examples.len(), sst.skipped), (67_349, 0));
    assert_eq!(read("sst2", "SST-2", "dev.tsv").examples.len(), 872);
    let labels: Vec<Label> = sst.examples.iter().map(|e| e.label).collect();
    let pos = labels.iter().filter(|l| **l == Label::Class(1)).count();
    assert!(
        (0.5..0.6).contains(&(pos as f64 / labels.len() as f64)),
        "SST-2 is 55.8% positive"
    );
    assert_eq!(read("mrpc", "MRPC", "train.tsv").examples.len(), 2_576);
    // test.tsv starts with a BOM and the original `Quality` header.
    assert_eq!(read("mrpc", "MRPC", "test.tsv").examples.len(), 1_725);
    assert_eq!(read("rte", "RTE", "dev.tsv").examples.len(), 139);
    let sts = read("stsb", "STS-B", "dev.tsv");
    assert_eq!(sts.examples.len(), 1_500);
    assert!(sts
        .examples
        .iter()
        .all(|e| matches!(e.label, Label::Score(x) if (0.0..=5.0).contains(&x))));
    assert_eq!(read("stsb", "STS-B", "test.tsv").examples.len(), 1_500);
    assert_eq!(read("wnli", "WNLI", "train.tsv").examples.len(), 565);

    let sq = squad::read(&root.join("squad/dev-v2.0-subset.json")).unwrap();
    assert_eq!(
        (sq.questions.len(), sq.articles, sq.misaligned),
        (1_407, 5, 0)
    );
    let answerable = sq.questions.iter().filter(|q| !q.impossible).count();
    assert_eq!(answerable, 705);
    assert!(sq
        .questions
        .iter()
        .filter(|q| q.impossible)
        .all(|q| q.answers.is_empty()));
}

fn values(p: &dyn Params) -> Vec<(String, Vec<f32>)> {
    p.named_params()
        .into_iter()
        .map(|(n, v)| (n, v.to_vec()))
        .collect()
}

/// The selection split (`select_fraction`) is scored exactly as dev is and changes nothing
/// in training: the same run with it as dev gives the same numbers.
#[test]
fn the_selection_split_is_scored_as_dev_and_leaves_training_alone() {
    let mut words = FILLER.to_vec();
    words.extend(["good", "bad"]);
    let tok = tokenizer(&words, "sentiment-select");
    let spec = FinetuneSpec {
        epochs: 2,
        batch_size: 16,
        max_seq_len: 16,
        lr: vec![3e-3],
        ..Default::default()
    };
    let t = task::find("sst2").unwrap();
    let split = |dev, select| Splits::Glue {
        train: sentiment(96, 1),
        dev,
        select,
        skipped: 0,
    };
    let with = finetune::prepare(&t, &spec, split(sentiment(40, 2), sentiment(30, 3)), &tok);
    let as_dev = finetune::prepare(&t, &spec, split(sentiment(30, 3), vec![]), &tok);
    assert_eq!(with.train.len(), 96);
    assert_eq!(with.select.as_ref().map(|s| s.dev.len()), Some(30));
    assert!(as_dev.select.is_none());
    let source = Source {
        model: tiny_model(),
        tokenizer: tok.clone(),
        checkpoint: None,
    };
    let j = job("sst2", Init::Scratch, Mode::Finetune, spec);
    let a = finetune::fit(&j, &source, &with, None).unwrap();
    let b = finetune::fit(&j, &source, &as_dev, None).unwrap();
    assert!(b.select.is_empty());
    assert_eq!(a.select.len(), b.metrics.len());
    assert_eq!(
        a.select, b.metrics,
        "selection scores differ from dev scoring"
    );
    assert_ne!(
        a.metrics, a.select,
        "dev and selection are different examples"
    );
}

#[test]
fn finetuning_learns_and_probing_leaves_the_encoder_frozen() {
    let mut words = FILLER.to_vec();
    words.extend(["good", "bad"]);
    let tok = tokenizer(&words, "sentiment");
    let spec = FinetuneSpec {
        epochs: 6,
        batch_size: 16,
        max_seq_len: 16,
        lr: vec![3e-3],
        probe_lr: vec![3e-3],
        ..Default::default()
    };
    let t = task::find("sst2").unwrap();
    let splits = Splits::Glue {
        select: vec![],
        train: sentiment(320, 1),
        dev: sentiment(100, 2),
        skipped: 0,
    };
    let prep = finetune::prepare(&t, &spec, splits, &tok);
    let source = Source {
        model: tiny_model(),
        tokenizer: tok.clone(),
        checkpoint: None,
    };
    let fresh = Encoder::new(
        &Dev::default(),
        &source.model,
        tok.vocab_size(),
        &mut stream(3, "finetune.init"),
    );

    let ft = finetune::fit(
        &job("sst2", Init::Scratch, Mode::Finetune, spec.clone()),
        &source,
        &prep,
        None,
    )
    .unwrap();
    let acc = ft.metrics.iter().find(|(k, _)| k == "accuracy").unwrap().1;
    assert!(
        acc > 0.9,
        "fine-tuning from scratch should learn a one-word rule: {acc}"
    );
    assert_eq!(ft.steps, 6 * 20);
    assert_ne!(
        values(&ft.encoder),
        values(&fresh),
        "fine-tuning trains the encoder"
    );

    // The same run in bf16 mixed precision (issue 16) learns the rule too, with products of
    // its own — or, on a CPU without AVX512-BF16, those of f32 exactly.
    let bf16 = finetune::fit(
        &job(
            "sst2",
            Init::Scratch,
            Mode::Finetune,
            FinetuneSpec {
                precision: pretext::config::Precision::Bf16,
                ..spec.clone()
            },
        ),
        &source,
        &prep,
        None,
    )
    .unwrap();
    let acc16 = bf16
        .metrics
        .iter()
        .find(|(k, _)| k == "accuracy")
        .unwrap()
        .1;
    assert!(acc16 > 0.9, "bf16 fine-tuning: {acc16}");
    assert_eq!(
        values(&bf16.encoder) == values(&ft.encoder),
        !pretext::model::precision::cpu_has_bf16(),
        "bf16 fine-tuning's products are f32's exactly only where the CPU lacks bf16"
    );

    let probe = finetune::fit(
        &job("sst2", Init::Scratch, Mode::Probe, spec.clone()),
        &source,
        &prep,
        None,
    )
    .unwrap();
    assert_eq!(
        values(&probe.encoder),
        values(&fresh),
        "a probe must not touch the encoder"
    );
    let head0 = Head::new(
        &Dev::default(),
        Kind::Classify { classes: 2 },
        32,
        0.02,
        &mut stream(3, "finetune.head"),
    );
    assert_ne!(
        values(&probe.head),
        values(&head0),
        "the probe trains its head"
    );

    // Same job, same seed: the same numbers.
    let again = finetune::fit(
        &job("sst2", Init::Scratch, Mode::Finetune, spec),
        &source,
        &prep,
        None,
    )
    .unwrap();
    assert_eq!(again.metrics, ft.metrics);
}

#[test]
fn pretrained_init_is_the_pretraining_checkpoint() {
    let text = r#"
[tokenizer]
vocab_size = 300
[model]
layers = 1
hidden = 32
heads = 2
ffn = 64
max_positions = 32
norm = "powernorm"
[optimizer]
warmup_steps = 2
[training]
steps = 6
batch_size = 4
seq_len = 32
"#;
    let cfg = LoadedExperiment::from_str(text, Path::new("t.toml"))
        .unwrap()
        .runs
        .remove(0)
        .config;
    let dir = common::scratch("ft-pre");
    let prepared = data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), Some(&dir)).unwrap();
    let mut trainer = Trainer::new(&cfg, &prepared).unwrap();
    for _ in 0..6 {
        trainer.train_step().unwrap();
    }
    let ckpt = dir.join("latest.safetensors");
    trainer.save_checkpoint(&ckpt).unwrap();

    let tok = prepared.tokenizer.clone();
    let source = Source {
        model: cfg.model.clone(),
        tokenizer: tok,
        checkpoint: Some(ckpt),
    };
    let t = task::find("sst2").unwrap();
    let spec = FinetuneSpec {
        epochs: 1,
        max_seq_len: 16,
        ..Default::default()
    };
    let prep = finetune::prepare(
        &t,
        &spec,
        Splits::Glue {
            select: vec![],
            train: sentiment(16, 1),
            dev: sentiment(8, 2),
            skipped: 0,
        },
        &prepared.tokenizer,
    );
    let probe = finetune::fit(
        &job("sst2", Init::Pretrained, Mode::Probe, spec.clone()),
        &source,
        &prep,
        None,
    )
    .unwrap();
    let pretrained = &trainer.bundle.encoder;
    assert_eq!(values(&probe.encoder), values(pretrained));
    // Debug prints each f32 exactly (shortest round-trip form).
    let states = |m: &dyn Params| -> Vec<String> {
        m.running_states()
            .into_iter()
            .map(|(module, s)| format!("{module} {:?}", s.vectors()))
            .collect()
    };
    assert!(!states(pretrained).is_empty());
    assert_eq!(
        states(&probe.encoder),
        states(pretrained),
        "PowerNorm statistics load too"
    );
    let scratch = finetune::fit(
        &job("sst2", Init::Scratch, Mode::Probe, spec),
        &source,
        &prep,
        None,
    )
    .unwrap();
    assert_ne!(values(&scratch.encoder), values(pretrained));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 19: a dev split with nothing in it is an error that names the data, not a score of
/// 0.000 that reads like a result.
#[test]
fn a_dev_split_without_examples_is_an_error_not_a_score() {
    let mut words = FILLER.to_vec();
    words.extend(["good", "bad"]);
    let tok = tokenizer(&words, "empty-dev");
    let spec = FinetuneSpec {
        epochs: 1,
        batch_size: 8,
        max_seq_len: 16,
        data: "glue/empty-dev".into(),
        ..Default::default()
    };
    let t = task::find("sst2").unwrap();
    let splits = Splits::Glue {
        select: vec![],
        train: sentiment(16, 1),
        dev: Vec::new(),
        skipped: 0,
    };
    let prep = finetune::prepare(&t, &spec, splits, &tok);
    assert_eq!(prep.dev_items(), 0);
    let source = Source {
        model: tiny_model(),
        tokenizer: tok.clone(),
        checkpoint: None,
    };
    // Refused before the run folder is made: a refused run leaves nothing behind.
    let dir = std::env::temp_dir().join(format!("pretext-empty-dev-{}", std::process::id()));
    let e = finetune::run(
        &job("sst2", Init::Scratch, Mode::Finetune, spec),
        &source,
        &prep,
        &dir,
    )
    .expect_err("scoring zero dev examples must fail")
    .to_string();
    assert!(
        e.contains("glue/empty-dev") && e.contains("no example"),
        "{e}"
    );
    assert!(!dir.exists(), "the refused run left {}", dir.display());
}
