//! The parameter counts `pretext validate` prints against the models pretext builds, and the
//! untied MLM decoder (`model.tie_word_embeddings = false`) as a matrix of its own.

mod common;

use pretext::config::{Experiment, NormKind};
use pretext::model::Params;
use pretext::train::Trainer;

/// The parameter count `pretext validate` prints (config::memory::parameters, counted as HF
/// counts `BertForPreTraining`) is the count of the model pretext builds with MLM + NSP.
#[test]
fn the_printed_parameter_count_is_the_built_models() {
    for tie in [true, false] {
        let mut cfg =
            common::small_run("[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"nsp\"\n");
        cfg.model.tie_word_embeddings = tie;
        cfg.model.linear_bias = tie;
        parameter_count_matches(&cfg);
    }
}

/// `pretext validate`'s count (`objectives::registry::parameters`: the encoder's formula plus
/// each registry entry's) is what `Bundle` builds, for every objective, both ELECTRA
/// generators, each norm and the options that add or drop parameters.
#[test]
fn every_objectives_parameter_count_is_what_it_builds() {
    let objectives = [
        "[[objectives]]\nname = \"mlm\"\n",
        "[[objectives]]\nname = \"sop\"\n",
        "[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"contrastive\"\n",
        "[[objectives]]\nname = \"electra\"\n",
        "[[objectives]]\nname = \"electra\"\noptions = { generator_size = 0.5 }\n",
        "[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"nsp\"\n[[objectives]]\nname = \"electra\"\noptions = { generator_size = 0.25 }\n",
    ];
    for (i, o) in objectives.iter().enumerate() {
        let mut cfg = common::small_run(o);
        cfg.model.norm = [NormKind::PostLn, NormKind::PreLn, NormKind::Powernorm][i % 3];
        cfg.model.tie_word_embeddings = i % 2 == 0;
        cfg.model.linear_bias = i % 4 != 1;
        let (built, names) = built_parameters(&cfg);
        assert_eq!(
            built,
            pretext::objectives::registry::parameters(&cfg, cfg.tokenizer.vocab_size),
            "{o} with {:?}: {names}",
            cfg.model.norm
        );
    }
}

fn parameter_count_matches(cfg: &Experiment) {
    let (built, names) = built_parameters(cfg);
    assert_eq!(built, pretext::config::memory::parameters(cfg), "{names}");
}

/// How many parameters `Bundle` builds for `cfg`, and their names and shapes for a message.
fn built_parameters(cfg: &Experiment) -> (f64, String) {
    let dev = pretext::model::device(1).unwrap();
    let bundle = pretext::train::Bundle::new(&dev, cfg, cfg.tokenizer.vocab_size);
    let params = bundle.named_params();
    let built: usize = params
        .iter()
        .map(|(_, p)| p.shape().iter().product::<usize>())
        .sum();
    let names: Vec<_> = params.iter().map(|(n, p)| (n.clone(), p.shape())).collect();
    (built as f64, format!("{names:?}"))
}

/// `model.tie_word_embeddings = false`: the MLM decoder is a matrix of its own. Set to the
/// word embeddings it scores exactly as the tied model does; trained, the two part ways.
#[test]
fn an_untied_decoder_is_its_own_matrix() {
    let objectives = "[[objectives]]\nname = \"mlm\"\n";
    let tied = common::small_run(objectives);
    let mut untied = tied.clone();
    untied.model.tie_word_embeddings = false;
    assert!(
        pretext::train::settings::resolved_text(&untied).contains("tie_word_embeddings = false")
    );
    assert!(!pretext::train::settings::resolved_text(&tied).contains("tie_word_embeddings"));
    let data = common::tokenized(&tied);
    let a = Trainer::new(&tied, &data).unwrap();
    let mut b = Trainer::new(&untied, &data).unwrap();
    let value = |t: &Trainer, name: &str| {
        t.bundle
            .named_params()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.to_vec())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let words = value(&a, "embeddings.word.weight");
    assert_eq!(words, value(&b, "embeddings.word.weight"));
    assert_ne!(words, value(&b, "heads.mlm.decoder.weight"));
    b.bundle.visit_mut("", &mut |n, mut p| {
        if n == "heads.mlm.decoder.weight" {
            p.copy_from(&words);
        }
    });
    let (ea, eb) = (
        a.evaluate().unwrap().unwrap(),
        b.evaluate().unwrap().unwrap(),
    );
    assert_eq!(ea.total_loss, eb.total_loss);

    for _ in 0..3 {
        b.train_step().unwrap();
    }
    let (w, d) = (
        value(&b, "embeddings.word.weight"),
        value(&b, "heads.mlm.decoder.weight"),
    );
    assert!(w != words && d != words && w != d);
}
