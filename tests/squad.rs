//! Issue 6's span task: SQuAD windows and decoding find the answer end to end, and the span
//! head's gradients (with mean pooling's masked mean) are checked against finite differences.

mod common;

use common::finetuning::{job, tiny_model, tokenizer, FILLER};
use dfdx::prelude::*;
use pretext::config::{FinetuneSpec, Init, Mode, ModelConfig};
use pretext::finetune::data::Splits;
use pretext::finetune::head::{pool, Head};
use pretext::finetune::task::{self, Kind};
use pretext::finetune::{self, squad, Source};
use pretext::model::{Dev, Encoder};
use pretext::rng::stream;
use rand::{seq::SliceRandom, Rng};
use std::path::Path;

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
