//! `model.init`: a pretraining run that starts from another run's encoder (continued
//! pretraining, or SimCSE's second stage), and the refusals that keep it from loading an
//! encoder into the wrong vocabulary.

mod common;

use pretext::config::LoadedExperiment;
use pretext::train::Trainer;
use std::path::Path;

fn experiment(name: &str, steps: u64, extra: &str) -> String {
    let warmup = steps.min(5);
    format!(
        r#"
name = "{name}"
[data]
corpus = ["embedded"]
heldout_fraction = 0.1
[tokenizer]
vocab_size = 500
{extra}
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 64
[[objectives]]
name = "mlm"
[optimizer]
lr = 3e-3
warmup_steps = {warmup}
[training]
steps = {steps}
batch_size = 16
seq_len = 64
eval_every = {steps}
log_every = 1
"#
    )
}

fn pretext(dir: &Path, file: &str, subcommand: &str) -> std::process::Output {
    match subcommand {
        "run" => common::run_in(dir, file).output().unwrap(),
        _ => common::pretext()
            .arg(subcommand)
            .arg(dir.join(file))
            .output()
            .unwrap(),
    }
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The MLM loss a run's summary.json records under `part` (`first_train`, `last_eval`).
fn mlm_loss(run: &Path, part: &str) -> f64 {
    summary(run)[part]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv[0] == "mlm/loss")
        .unwrap()[1]
        .as_f64()
        .unwrap()
}

fn first_mlm_loss(run: &Path) -> f64 {
    mlm_loss(run, "first_train")
}

#[test]
fn a_run_starts_from_another_runs_encoder_and_wrong_sources_are_refused() {
    let dir = common::scratch("init");
    let w = |f: &str, text: String| std::fs::write(dir.join(f), text).unwrap();

    // Stage 1: MLM for 80 steps.
    w("stage1.toml", experiment("stage1", 80, ""));
    let o = pretext(&dir, "stage1.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = r#"path = "runs/stage1/tokenizer.json""#;

    // Stage 2 from its encoder, and the same run from scratch: the first training loss (before
    // any update) is the loaded encoder's, far below a fresh one's.
    let init = r#"
[model]
init = "runs/stage1/base""#;
    w(
        "stage2.toml",
        experiment("stage2", 2, tok).replace("\n[model]\n", &format!("{init}\n")),
    );
    w("fresh.toml", experiment("fresh", 2, tok));
    for f in ["stage2.toml", "fresh.toml"] {
        let o = pretext(&dir, f, "run");
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (from, fresh) = (
        first_mlm_loss(&dir.join("runs/stage2/base")),
        first_mlm_loss(&dir.join("runs/fresh/base")),
    );
    assert!(from < fresh - 0.5, "from stage 1: {from}, fresh: {fresh}");

    // Exactly stage 1's weights: after `init_from`, stage 2's trainer holds what stage 1's
    // own trainer restores from its checkpoint.
    let ckpt = dir.join("runs/stage1/base/checkpoints/latest.safetensors");
    let load = |file: &str| {
        let cfg = LoadedExperiment::load(&dir.join(file)).unwrap().runs[0]
            .config
            .clone();
        let data = pretext::data::prepare(
            &cfg.data,
            &cfg.tokenizer,
            &dir,
            Some(&dir.join("runs/stage1")),
        )
        .unwrap();
        (cfg, data)
    };
    let (cfg2, data2) = load("stage2.toml");
    let mut two = Trainer::new(&cfg2, &data2).unwrap();
    assert_eq!(two.init_from(&ckpt).unwrap(), vec!["mlm".to_string()]);
    let (cfg1, data1) = load("stage1.toml");
    let mut one = Trainer::new(&cfg1, &data1).unwrap();
    one.load_checkpoint(&ckpt).unwrap();
    use pretext::model::Params;
    // The encoder and the MLM head (both runs train `mlm`, so its head comes along).
    let enc = |t: &Trainer| -> Vec<Vec<f32>> {
        t.bundle
            .named_params()
            .into_iter()
            .map(|(_, p)| p.to_vec())
            .collect()
    };
    assert!(
        enc(&two) == enc(&one),
        "the loaded encoder is not stage 1's"
    );

    // Zero steps from the init: the run holds stage 1's weights, scored on the same
    // held-out set as stage 1's last evaluation, so `[[finetune]]` entries can start there.
    w(
        "zero.toml",
        experiment("zero", 0, tok).replace("\n[model]\n", &format!("{init}\n")),
    );
    let o = pretext(&dir, "zero.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (cfg0, data0) = load("zero.toml");
    let mut zero = Trainer::new(&cfg0, &data0).unwrap();
    zero.load_checkpoint(&dir.join("runs/zero/base/checkpoints/latest.safetensors"))
        .unwrap();
    assert!(enc(&zero) == enc(&one), "zero steps changed the weights");
    let (zero_run, stage1) = (dir.join("runs/zero/base"), dir.join("runs/stage1/base"));
    let (s0, s1) = (summary(&zero_run), summary(&stage1));
    assert_eq!(s0["steps"], 0);
    assert_eq!(s0["eval_fingerprint"], s1["eval_fingerprint"]);
    assert_eq!(
        mlm_loss(&zero_run, "last_eval"),
        mlm_loss(&stage1, "last_eval"),
        "the same weights on the same masks"
    );

    // Refusals, before anything trains, naming the key.
    let refused = |file: &str, text: String, needle: &str| {
        w(file, text);
        let o = pretext(&dir, file, "validate");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{file}: {err}");
        assert_ne!(o.status.code(), Some(101), "{file}: panicked: {err}");
    };
    let with_init = |tok: &str, path: &str| {
        experiment("x", 2, tok).replace("\n[model]\n", &format!("\n[model]\ninit = \"{path}\"\n"))
    };
    refused(
        "zero_steps.toml",
        experiment("x", 0, ""),
        "0 is for a run that only evaluates",
    );
    refused(
        "no_tok.toml",
        with_init("", "runs/stage1/base"),
        "needs tokenizer.path",
    );
    refused(
        "missing.toml",
        with_init(tok, "runs/nothing/base"),
        "model.init",
    );
    // Another tokenizer of the same size: it would load, and mean nothing.
    std::fs::copy(
        dir.join("runs/stage1/tokenizer.json"),
        dir.join("other.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("other.json")).unwrap();
    let other = text.replacen("\"the\"", "\"teh\"", 1);
    assert_ne!(text, other, "the tokenizer has no `the` to rename");
    std::fs::write(dir.join("other.json"), other).unwrap();
    refused(
        "other_tok.toml",
        with_init(r#"path = "other.json""#, "runs/stage1/base"),
        "differs from this run's",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `tokenizer.path`, `vocab_size` is not read: `pretext validate` counts the parameters
/// (and estimates the memory) of the vocabulary the tokenizer file holds.
#[test]
fn validate_counts_the_vocabulary_of_tokenizer_path() {
    let dir = common::scratch("vocab-count");
    let mut words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend((0..115).map(|i| format!("w{i}")));
    std::fs::write(dir.join("vocab.txt"), words.join("\n")).unwrap();
    let text = experiment("x", 2, r#"path = "vocab.txt""#);
    std::fs::write(dir.join("x.toml"), &text).unwrap();
    let o = pretext(&dir, "x.toml", "validate");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut cfg = LoadedExperiment::from_str(&text, Path::new("x.toml"))
        .unwrap()
        .runs
        .remove(0)
        .config;
    assert_eq!(cfg.tokenizer.vocab_size, 500, "the file's (ignored) key");
    cfg.tokenizer.vocab_size = 120;
    let want = format!(
        "params={:.2}M",
        pretext::config::memory::parameters(&cfg) / 1e6
    );
    cfg.tokenizer.vocab_size = 500;
    let wrong = format!(
        "params={:.2}M",
        pretext::config::memory::parameters(&cfg) / 1e6
    );
    assert_ne!(
        want, wrong,
        "the two counts must differ for the test to mean anything"
    );
    assert!(out.contains(&want), "want {want}: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pretext export RUN --hf OUT`, which must succeed.
fn export(run: &Path, out: &Path) {
    let o = common::pretext()
        .arg("export")
        .arg(run)
        .arg("--hf")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `model.init = "hf:DIR"`: a run exported to HF transformers' layout comes back as the
/// start of another run with the same weights (encoder and MLM head: the held-out loss of a
/// zero-step run equals the source run's last one), and a `[model]` or tokenizer that does
/// not describe the HF model is refused with the key that differs.
#[test]
fn an_hf_bert_directory_starts_a_run_with_its_weights() {
    let dir = common::scratch("hf-init");
    let w = |f: &str, text: String| std::fs::write(dir.join(f), text).unwrap();
    w("source.toml", experiment("source", 40, ""));
    let o = pretext(&dir, "source.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    export(&dir.join("runs/source/base"), &dir.join("hf"));

    let with = |name: &str, tok: &str, init: &str, model_extra: &str| {
        experiment(name, 0, &format!("path = \"{tok}\"")).replace(
            "\n[model]\n",
            &format!("\n[model]\ninit = \"{init}\"\n{model_extra}"),
        )
    };
    w(
        "from_hf.toml",
        with("from-hf", "hf/tokenizer.json", "hf:hf", ""),
    );
    let o = pretext(&dir, "from_hf.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mlm_loss(&dir.join("runs/from-hf/base"), "last_eval"),
        mlm_loss(&dir.join("runs/source/base"), "last_eval"),
        "the HF directory's encoder and MLM head are the source run's"
    );

    let refused = |file: &str, text: String, needle: &str| {
        w(file, text);
        let o = pretext(&dir, file, "run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{file}: {err}");
        assert_ne!(o.status.code(), Some(101), "{file}: panicked: {err}");
    };
    refused(
        "wide.toml",
        with("wide", "hf/tokenizer.json", "hf:hf", "").replace("hidden = 32", "hidden = 64"),
        "model.hidden = 64, the HF model has hidden_size = 32",
    );
    refused(
        "pre_ln.toml",
        with(
            "pre-ln",
            "hf/tokenizer.json",
            "hf:hf",
            "norm = \"pre-ln\"\n",
        ),
        "model.norm = \"pre-ln\"; HF's BERT is model.norm = \"post-ln\"",
    );
    refused(
        "other_tok.toml",
        with("other-tok", "runs/source/tokenizer.json", "hf:hf", ""),
        "set tokenizer.path to the HF model's own tokenizer",
    );
    std::fs::create_dir_all(dir.join("bare")).unwrap();
    std::fs::copy(dir.join("hf/config.json"), dir.join("bare/config.json")).unwrap();
    std::fs::copy(
        dir.join("hf/tokenizer.json"),
        dir.join("bare/tokenizer.json"),
    )
    .unwrap();
    refused(
        "bare.toml",
        with("bare", "bare/tokenizer.json", "hf:bare", ""),
        "no model.safetensors",
    );

    // A pre-LN run goes out as RobertaPreLayerNorm and comes back the same way.
    w(
        "source_pre_ln.toml",
        experiment("source-pre-ln", 40, "")
            .replace("\n[model]\n", "\n[model]\nnorm = \"pre-ln\"\n"),
    );
    let o = pretext(&dir, "source_pre_ln.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    export(&dir.join("runs/source-pre-ln/base"), &dir.join("hf-pre-ln"));
    w(
        "from_pre_ln.toml",
        with(
            "from-pre-ln",
            "hf-pre-ln/tokenizer.json",
            "hf:hf-pre-ln",
            "norm = \"pre-ln\"\n",
        ),
    );
    let o = pretext(&dir, "from_pre_ln.toml", "run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mlm_loss(&dir.join("runs/from-pre-ln/base"), "last_eval"),
        mlm_loss(&dir.join("runs/source-pre-ln/base"), "last_eval"),
        "the RobertaPreLayerNorm directory's encoder and MLM head are the source run's"
    );
    refused(
        "post_ln_from_pre_ln.toml",
        with(
            "post-from-pre",
            "hf-pre-ln/tokenizer.json",
            "hf:hf-pre-ln",
            "",
        ),
        "HF's RobertaPreLayerNorm is model.norm = \"pre-ln\"",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
