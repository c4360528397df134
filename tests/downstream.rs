//! Issue 6: downstream evaluation — readers on the real GLUE and SQuAD files, fine-tuning
//! that learns, probes that leave the encoder frozen, pretrained initialisation that is the
//! pretraining checkpoint, SQuAD windows and decoding end to end, and head gradients.

mod common;

use dfdx::prelude::*;
use pretext::config::{FinetuneSpec, Init, LoadedExperiment, Mode, ModelConfig};
use pretext::data::{self, Tokenizer};
use pretext::finetune::data::Splits;
use pretext::finetune::glue::{Example, Label};
use pretext::finetune::head::{pool, Head};
use pretext::finetune::task::{self, Kind};
use pretext::finetune::{self, squad, Job, Source};
use pretext::model::{Dev, Encoder, Params};
use pretext::rng::stream;
use pretext::train::Trainer;
use rand::{seq::SliceRandom, Rng};
use std::path::Path;
use std::sync::Arc;

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

/// A WordPiece vocabulary of whole words, so tests control tokenisation exactly.
fn tokenizer(words: &[&str], tag: &str) -> Arc<Tokenizer> {
    let dir = common::scratch(&format!("ft-{tag}"));
    let mut vocab: Vec<&str> = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    vocab.extend(words);
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n")).unwrap();
    Arc::new(Tokenizer::load(&path, true).unwrap())
}

fn tiny_model() -> ModelConfig {
    ModelConfig {
        layers: 1,
        hidden: 32,
        heads: 2,
        ffn: 64,
        max_positions: 64,
        ..ModelConfig::default()
    }
}

fn job(task: &str, init: Init, mode: Mode, spec: FinetuneSpec) -> Job {
    Job {
        task: task::find(task).unwrap(),
        lr: spec.rates(mode)[0],
        spec: FinetuneSpec {
            task: task.into(),
            ..spec
        },
        init,
        mode,
        seed: 3,
    }
}

const FILLER: &[&str] = &[
    "the", "film", "plot", "actor", "was", "very", "a", "story", "it", "scene",
];

/// Sentiment decided by one word among fillers.
fn sentiment(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = stream(seed, "test.sentiment");
    (0..n)
        .map(|_| {
            let mut words: Vec<&str> = (0..rng.gen_range(4..9))
                .map(|_| *FILLER.choose(&mut rng).unwrap())
                .collect();
            let good = rng.gen_bool(0.5);
            let at = rng.gen_range(0..=words.len());
            words.insert(at, if good { "good" } else { "bad" });
            Example {
                a: words.join(" "),
                b: None,
                label: Label::Class(usize::from(good)),
            }
        })
        .collect()
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

#[test]
fn squad_windows_and_decoding_find_the_answer_end_to_end() {
    // The answer is the one `zebra` of a 40-word context: far longer than a window, so most
    // windows hold no answer and decoding must pick the right window.
    let mut words = FILLER.to_vec();
    words.extend(["zebra", "where", "is", "animal"]);
    let tok = tokenizer(&words, "squad");
    let mut rng = stream(5, "test.squad");
    let mut paragraphs = Vec::new();
    for i in 0..160 {
        let mut ctx: Vec<&str> = (0..40).map(|_| *FILLER.choose(&mut rng).unwrap()).collect();
        let at = rng.gen_range(0..ctx.len());
        ctx[at] = "zebra";
        let start: usize = ctx[..at].iter().map(|w| w.len() + 1).sum();
        paragraphs.push(serde_json::json!({
            "context": ctx.join(" "),
            "qas": [{"id": format!("q{i}"), "question": "where is the animal",
                     "answers": [{"text": "zebra", "answer_start": start}]}]
        }));
    }
    let (train, dev) = paragraphs.split_at(120);
    let file = serde_json::json!({"data": [
        {"title": "train", "paragraphs": train},
        {"title": "dev", "paragraphs": dev}]});
    let read = squad::parse(&file.to_string(), Path::new("synthetic.json")).unwrap();
    let (train, dev): (Vec<_>, Vec<_>) = read.questions.into_iter().partition(|q| q.article == 0);
    let spec = FinetuneSpec {
        epochs: 6,
        batch_size: 16,
        max_seq_len: 20,
        max_query_len: 4,
        doc_stride: 7,
        lr: vec![2e-3],
        ..Default::default()
    };
    let t = task::find("squad").unwrap();
    let prep = finetune::prepare(
        &t,
        &spec,
        Splits::Squad {
            select: vec![],
            train,
            dev,
            misaligned: 0,
            unanswerable: 0,
        },
        &tok,
    );
    // [CLS] + 4 query + [SEP] + 13 context + [SEP]: 40 words take windows at 0, 7, …, 28.
    assert_eq!(prep.dev.len(), 40 * 5);
    let source = Source {
        model: tiny_model(),
        tokenizer: tok,
        checkpoint: None,
    };
    let fitted = finetune::fit(
        &job("squad", Init::Scratch, Mode::Finetune, spec),
        &source,
        &prep,
        None,
    )
    .unwrap();
    let em = fitted
        .metrics
        .iter()
        .find(|(k, _)| k == "exact_match")
        .unwrap()
        .1;
    assert!(
        em > 0.9,
        "a lexical answer should be found across windows: EM {em}"
    );
    // The predictions file holds one answer per dev question, by id, and they are what
    // the metric scored.
    let Some(finetune::Predictions::Answers(answers)) = &fitted.predictions else {
        panic!("SQuAD predicts answers: {:?}", fitted.predictions);
    };
    let ids: Vec<String> = (120..160).map(|i| format!("q{i}")).collect();
    assert_eq!(
        answers.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        ids
    );
    let right = answers.iter().filter(|(_, a)| a == "zebra").count() as f64;
    assert!((right / 40.0 - em).abs() < 1e-12, "{answers:?}");
}

#[test]
fn span_head_gradients_match_finite_differences_and_mean_pooling_is_a_masked_mean() {
    let dev = Dev::default();
    let (b, s, h) = (2, 5, 4);
    let enc = Encoder::new(
        &dev,
        &ModelConfig {
            hidden: h,
            heads: 2,
            ffn: 8,
            layers: 1,
            max_positions: 8,
            ..ModelConfig::default()
        },
        20,
        &mut stream(1, "t"),
    );
    let ids = vec![2u32; b * s];
    let types = vec![0u32; b * s];
    let mask = vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let inp = enc.inputs(b, s, &ids, &types, &mask).unwrap();
    let mut rng = stream(2, "values");
    let x: Vec<f32> = (0..b * s * h).map(|_| rng.gen_range(-1.0..1.0)).collect();

    let rows: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(x.clone(), (b * s, h));
    let pooled = pool(&dev, &enc, rows, &inp, true).as_vec();
    for j in 0..h {
        let want0 = (0..3).map(|t| x[t * h + j]).sum::<f32>() / 3.0;
        let want1 = (5..10).map(|t| x[t * h + j]).sum::<f32>() / 5.0;
        assert!((pooled[j] - want0).abs() < 1e-6 && (pooled[h + j] - want1).abs() < 1e-6);
    }

    let head = Head::new(&dev, Kind::Span, h, 0.5, &mut stream(3, "head"));
    let targets = vec![
        finetune::data::Target::Span(1, 2),
        finetune::data::Target::Span(0, 0),
    ];
    let loss_at = |x: &[f32]| {
        let t: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(x.to_vec(), (b * s, h));
        head.loss(&dev, t, &targets, &inp).0.array()
    };
    let leaf: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(x.clone(), (b * s, h));
    let (loss, _) = head.loss(&dev, leaf.leaky_trace(), &targets, &inp);
    let grads = loss.backward();
    let analytic = grads.get(&leaf).as_vec();
    let eps = 1e-2;
    for i in 0..x.len() {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += eps;
        down[i] -= eps;
        let numeric = (loss_at(&up) - loss_at(&down)) / (2.0 * eps);
        assert!(
            (numeric - analytic[i]).abs() < 2e-3,
            "d loss / d x[{i}]: numeric {numeric}, analytic {}",
            analytic[i]
        );
    }
    // Padding rows get no gradient: their logits are masked out.
    assert!(analytic[3 * h..5 * h].iter().all(|g| *g == 0.0));
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
