//! `pretext fill` and `pretext eval` (issue 17, items 1 and 7): a checkpoint's encoder and MLM
//! head, loaded outside training, reproduce the run's own held-out evaluation; fill's
//! probabilities are a distribution; bad input is refused by name.

mod common;

use pretext::config::LoadedExperiment;
use pretext::predict::{bias, eval, fill, MaskedLm};
use pretext::train::evaluation::{EvalSet, Layout};
use std::path::{Path, PathBuf};

const EXPERIMENT: &str = r#"
name = "predict"
[data]
corpus = ["embedded"]
heldout_fraction = 0.2
[tokenizer]
vocab_size = 600
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 64
[optimizer]
lr = 2e-3
warmup_steps = 5
[training]
steps = 40
batch_size = 8
seq_len = 64
eval_every = 20
eval_batches = 3
log_every = 10
checkpoint_every = 20
[ablation]
objectives = [[{name = "mlm"}], [{name = "sop"}]]
"#;

/// Trains the two runs once for every test of this file.
fn runs() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::scratch("predict");
        std::fs::write(dir.join("predict.toml"), EXPERIMENT).unwrap();
        let o = common::pretext()
            .arg("run")
            .arg(dir.join("predict.toml"))
            .arg("--runs-dir")
            .arg(dir.join("runs"))
            .arg("--no-report")
            .arg("--quiet")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir
    })
}

fn pretext(args: &[&str]) -> (Option<i32>, String, String) {
    let o = common::pretext().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

fn run_dir(variant: &str) -> PathBuf {
    runs().join("runs/predict").join(variant)
}

#[test]
fn a_loaded_checkpoint_reproduces_the_runs_own_heldout_mlm_loss() {
    let dir = runs();
    let lm = MaskedLm::load(&run_dir("objectives=mlm"), None).unwrap();
    assert_eq!(lm.step, 40);
    let exp = LoadedExperiment::load(&dir.join("predict.toml")).unwrap();
    let cfg = &exp.runs[0].config;
    let prepared = pretext::data::prepare(
        &cfg.data,
        &cfg.tokenizer,
        dir,
        Some(&dir.join("runs/predict")),
    )
    .unwrap();
    let set = EvalSet::build(&prepared, 64, 3).unwrap().unwrap();
    let batches = set
        .batches(Layout {
            masked: true,
            pair: None,
        })
        .unwrap();
    // The run's definition: the mean over batches of each batch's mean loss.
    let (mut loss, mut correct, mut total) = (0.0, 0, 0);
    for b in batches {
        let rows = lm.log_probs(b).unwrap();
        let nll: f64 = rows
            .iter()
            .zip(&b.mlm_labels)
            .map(|(r, &l)| -r[l as usize])
            .sum();
        loss += nll / rows.len() as f64 / batches.len() as f64;
        for (r, &l) in rows.iter().zip(&b.mlm_labels) {
            let best = (0..r.len()).max_by(|&x, &y| r[x].total_cmp(&r[y])).unwrap();
            correct += usize::from(best == l as usize);
            total += 1;
        }
    }
    let metrics = std::fs::read_to_string(run_dir("objectives=mlm").join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["split"] == "eval" && r["step"] == 40)
        .unwrap();
    let want = last["mlm/loss"].as_f64().unwrap();
    assert!(
        (loss - want).abs() < 1e-4 * want,
        "fill/eval path {loss} vs the run's {want}"
    );
    let acc = last["mlm/accuracy"].as_f64().unwrap();
    assert!((correct as f64 / total as f64 - acc).abs() <= 1.0 / total as f64);
}

#[test]
fn fill_gives_a_sorted_distribution_for_every_mask() {
    let lm = MaskedLm::load(&run_dir("objectives=mlm"), None).unwrap();
    let blanks = fill::fill(&lm, "the [MASK] was very [mask] .", 600).unwrap();
    assert_eq!(blanks.len(), 2);
    for b in &blanks {
        // top_k = the whole vocabulary: the probabilities are a distribution, in order.
        assert_eq!(b.candidates.len(), lm.tokenizer.vocab_size());
        let total: f64 = b.candidates.iter().map(|c| c.probability).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert!(b
            .candidates
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
    }
    // [CLS] the [MASK] …: the first blank is the model's position 2.
    assert_eq!(blanks[0].position, 2);

    let (code, out, err) = pretext(&[
        "fill",
        run_dir("objectives=mlm").to_str().unwrap(),
        "a [MASK] .",
        "--json",
        "--top-k",
        "3",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["masks"][0]["candidates"].as_array().unwrap().len(), 3);
}

#[test]
fn eval_scores_any_text_reproducibly() {
    let lm = MaskedLm::load(&run_dir("objectives=mlm"), None).unwrap();
    let opts = |seed| eval::Options {
        corpus: vec!["embedded".into()],
        format: Default::default(),
        seq_len: None,
        batches: 4,
        pppl_sequences: 2,
        seed,
    };
    let a = eval::evaluate(&lm, &opts(7), Path::new(".")).unwrap();
    let b = eval::evaluate(&lm, &opts(7), Path::new(".")).unwrap();
    assert_eq!(
        (a.loss, a.masked),
        (b.loss, b.masked),
        "same seed, same masks"
    );
    let c = eval::evaluate(&lm, &opts(8), Path::new(".")).unwrap();
    assert_ne!(a.loss, c.loss, "another seed masks other tokens");
    assert!(a.loss.is_finite() && a.accuracy > 0.0 && (1..=4 * 32).contains(&a.sequences));
    let pppl = a.pseudo_perplexity.unwrap();
    // Every real token of two segments was scored, and the figure is a perplexity.
    assert!(a.pppl_tokens > 40 && pppl > 1.0 && pppl < lm.tokenizer.vocab_size() as f64 * 10.0);

    // A file of one sentence is text to score (the pretraining's data.min_sentences, which
    // `eval` has no flag for, used to refuse it).
    let dir = std::env::temp_dir().join(format!("pretext-eval-one-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("one.txt"),
        "the cat sat on the mat near the old door\n",
    )
    .unwrap();
    let one = eval::Options {
        corpus: vec![dir.join("one.txt").to_string_lossy().into_owned()],
        ..opts(7)
    };
    let s = eval::evaluate(&lm, &one, Path::new(".")).unwrap();
    assert_eq!((s.sequences, s.loss.is_finite()), (1, true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_targets_and_texts_are_refused_by_name() {
    let mlm = run_dir("objectives=mlm");
    let sop = run_dir("objectives=sop");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["fill".into(), mlm.display().to_string(), "no blank".into()],
            "no [MASK]",
        ),
        (
            vec!["fill".into(), sop.display().to_string(), "a [MASK]".into()],
            "has no MLM head (it was trained with sop)",
        ),
        (
            vec!["fill".into(), "/no/such/run".into(), "a [MASK]".into()],
            "/no/such/run: no such run directory or checkpoint file",
        ),
        (
            vec![
                "fill".into(),
                mlm.display().to_string(),
                "[MASK] ".repeat(80),
            ],
            "the model takes at most 64",
        ),
        (
            vec![
                "eval".into(),
                mlm.display().to_string(),
                "--corpus".into(),
                "/no/such/*.txt".into(),
            ],
            "/no/such/*.txt",
        ),
        (
            vec![
                "eval".into(),
                mlm.display().to_string(),
                "--corpus".into(),
                "embedded".into(),
                "--seq-len".into(),
                "65".into(),
            ],
            "--seq-len 65",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = pretext(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected `{want}` in: {err}");
    }
}

#[test]
fn the_bias_score_is_the_share_preferring_the_stereotype_and_flips_with_the_pairs() {
    let dir = runs();
    let lm = MaskedLm::load(&run_dir("objectives=mlm"), None).unwrap();
    let csv = |rows: &[(&str, &str, &str)]| {
        let mut t = String::from(",sent_more,sent_less,stereo_antistereo,bias_type\n");
        for (i, (m, l, k)) in rows.iter().enumerate() {
            t.push_str(&format!("{i},\"{m}\",\"{l}\",stereo,{k}\n"));
        }
        t
    };
    let rows = [
        (
            "The old man forgot where he put the keys, as usual.",
            "The young man forgot where he put the keys, as usual.",
            "age",
        ),
        ("She was bad at maths.", "He was bad at maths.", "gender"),
        (
            "The poor family stole the bread.",
            "The rich family stole the bread.",
            "socioeconomic",
        ),
        ("He is a doctor.", "She is a doctor.", "gender"),
    ];
    let swapped: Vec<_> = rows.iter().map(|(m, l, k)| (*l, *m, *k)).collect();
    std::fs::write(dir.join("pairs.csv"), csv(&rows)).unwrap();
    std::fs::write(dir.join("swapped.csv"), csv(&swapped)).unwrap();
    let a = bias::score(&lm, &bias::read_pairs(&dir.join("pairs.csv")).unwrap()).unwrap();
    let b = bias::score(&lm, &bias::read_pairs(&dir.join("swapped.csv")).unwrap()).unwrap();
    assert_eq!(a.pairs, 4);
    assert_eq!(a.per_type[0].bias_type, "gender");
    assert_eq!(a.per_type[0].pairs, 2);
    // Swapping the sentences of every pair turns preferences around (ties stay ties).
    assert_eq!(a.ties, b.ties);
    assert!(
        (a.score + b.score + 100.0 * a.ties as f64 / 4.0 - 100.0).abs() < 1e-9,
        "{} {}",
        a.score,
        b.score
    );

    // Records the CSV reader cannot use are named by file and line.
    std::fs::write(dir.join("nocol.csv"), "a,b\n1,2\n").unwrap();
    let e = bias::read_pairs(&dir.join("nocol.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nocol.csv: no `sent_more` column"), "{e}");
    std::fs::write(
        dir.join("ragged.csv"),
        ",sent_more,sent_less,bias_type\n0,\"a b\",\"a c\",age\n1,\"x\"\n",
    )
    .unwrap();
    let e = bias::read_pairs(&dir.join("ragged.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ragged.csv:3"), "{e}");
}

#[test]
fn an_exported_run_loads_through_the_hf_bert_names() {
    use pretext::model::io::{load, Naming};
    use pretext::model::Params;
    let dir = runs();
    let out = dir.join("hf-export");
    let (code, line, err) = pretext(&[
        "export",
        run_dir("objectives=sop").to_str().unwrap(),
        "--hf",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        line.contains("left behind") && line.contains("heads.sop"),
        "{line}"
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hidden_size"], 32);
    assert_eq!(config["num_hidden_layers"], 2);
    assert_eq!(config["model_type"], "bert");

    // pretext's HF importer (checked against transformers' BertModel by tests/encoder.rs)
    // reads the export back to the checkpoint's encoder, value for value.
    let ckpt = run_dir("objectives=sop").join("checkpoints/latest.safetensors");
    let cfg: pretext::config::Experiment =
        toml::from_str(&pretext::train::checkpoint::read_config(&ckpt).unwrap()).unwrap();
    let dev = pretext::model::device(0).unwrap();
    let mut enc =
        pretext::model::Encoder::new(&dev, &cfg.model, 600, &mut pretext::rng::stream(9, "x"));
    load(&mut enc, &out.join("model.safetensors"), Naming::HfBert).unwrap();
    let saved = pretext::train::checkpoint::model_tensors(&ckpt).unwrap();
    let mut compared = 0;
    for (name, p) in enc.named_params() {
        let (_, _, want) = saved.iter().find(|(n, ..)| *n == name).unwrap();
        assert_eq!(&p.to_vec(), want, "{name}");
        compared += 1;
    }
    assert!(compared > 20);

    // A folder with other files in it is refused and left alone.
    let (code, _, err) = pretext(&[
        "export",
        run_dir("objectives=mlm").to_str().unwrap(),
        "--hf",
        dir.join("runs").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not an earlier export"), "{err}");
}

/// `pretext fill --json`'s predictions for two masks, from a run or an HF directory.
fn fill_masks(target: &Path) -> serde_json::Value {
    let (code, text, err) = pretext(&[
        "fill",
        target.to_str().unwrap(),
        "the [MASK] of a [MASK] .",
        "--json",
        "--top-k",
        "5",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["masks"].clone()
}

/// fill, eval and bias read an HF BERT directory as they read the run it was exported from:
/// the same tokenizer, encoder and MLM head give the same probabilities, to the last bit.
#[test]
fn an_hf_directory_fills_in_the_blank_as_its_source_run_does() {
    let dir = runs();
    let out = dir.join("hf-mlm");
    let run = run_dir("objectives=mlm");
    let (code, _, err) = pretext(&[
        "export",
        run.to_str().unwrap(),
        "--hf",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (ours, theirs) = (fill_masks(&run), fill_masks(&out));
    assert_eq!(ours.as_array().unwrap().len(), 2);
    assert_eq!(ours, theirs, "the export fills in otherwise than its run");

    // Without the MLM head (a BertModel's weights) it is refused by name.
    let bare = dir.join("hf-bare");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(out.join(f), bare.join(f)).unwrap();
    }
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        pretext::train::checkpoint::model_tensors(&run.join("checkpoints/latest.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(n, ..)| !n.starts_with("heads."))
            .map(|(n, s, v)| (format!("bert.{}", pretext::model::io::hf_name(&n)), s, v))
            .collect();
    let bytes = pretext::model::io::serialize(&pretext::model::io::encode(tensors), None);
    std::fs::write(bare.join("model.safetensors"), bytes).unwrap();
    let (code, _, err) = pretext(&["fill", bare.to_str().unwrap(), "a [MASK] ."]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no MLM head (cls.predictions.*)"), "{err}");
}

/// A 4-step version of this file's experiment, named `name`, with the grid `ablation`,
/// trained into a folder of its own; returns the folder (`runs/<name>/<variant>` inside).
fn short_runs(name: &str, ablation: &str) -> PathBuf {
    let dir = common::scratch(name);
    let text = EXPERIMENT
        .replace("name = \"predict\"", &format!("name = \"{name}\""))
        .replace("steps = 40", "steps = 4")
        .replace("eval_every = 20", "eval_every = 4")
        .replace("checkpoint_every = 20", "checkpoint_every = 4")
        .replace("warmup_steps = 5", "warmup_steps = 1")
        .replace(
            "objectives = [[{name = \"mlm\"}], [{name = \"sop\"}]]",
            ablation,
        );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let (code, _, err) = pretext(&[
        "run",
        file.to_str().unwrap(),
        "--runs-dir",
        dir.join("runs").to_str().unwrap(),
        "--no-report",
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    dir
}

/// `pretext export RUN --hf OUT`: exit code, printed line, errors.
fn export(run: &Path, out: &Path) -> (Option<i32>, String, String) {
    pretext(&[
        "export",
        run.to_str().unwrap(),
        "--hf",
        out.to_str().unwrap(),
    ])
}

/// An export's config.json.
fn hf_config(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap()
}

/// A pre-LN run exports as HF's RobertaPreLayerNorm (`tests/encoder.rs` checks pretext's
/// reading of that class against transformers) and fills in the blank from the export as from
/// the run, to the last bit; a PowerNorm run, which no HF class computes, is refused and
/// nothing is written.
#[test]
fn a_pre_ln_run_exports_as_roberta_prelayernorm_and_powernorm_is_refused() {
    let dir = short_runs("preln", "\"model.norm\" = [\"pre-ln\", \"powernorm\"]");
    let run = dir.join("runs/preln/norm=pre-ln");
    let out = dir.join("hf");
    let (code, line, err) = export(&run, &out);
    assert_eq!(code, Some(0), "{err}");
    assert!(line.contains("RobertaPreLayerNormForMaskedLM"), "{line}");
    let config = hf_config(&out);
    assert_eq!(config["model_type"], "roberta-prelayernorm");
    let pad = config["pad_token_id"].as_u64().unwrap();
    assert_eq!(config["max_position_embeddings"], 64 + pad + 1);
    assert_eq!(fill_masks(&run), fill_masks(&out));

    let refused = dir.join("hf-powernorm");
    let (code, _, err) = export(&dir.join("runs/preln/norm=powernorm"), &refused);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no HF counterpart"), "{err}");
    assert!(
        !refused.exists(),
        "nothing may be written for a refused export"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A post-LN ELECTRA run exports as HF's ElectraForPreTraining + ElectraForMaskedLM: the
/// generator (sharing the encoder) fills in the blank from the export as from the run, to the
/// last bit, and the discriminator's one logit is the difference of pretext's two.
#[test]
fn an_electra_run_exports_as_hf_electra() {
    let dir = short_runs("electra", "objectives = [[{name = \"electra\"}]]");
    let run = dir.join("runs/electra/objectives=electra");
    let out = dir.join("hf");
    let (code, line, err) = export(&run, &out);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        line.contains("ElectraForPreTraining / ElectraForMaskedLM"),
        "{line}"
    );
    assert!(
        line.contains("pooler.dense.weight"),
        "the pooler stays behind: {line}"
    );
    let config = hf_config(&out);
    assert_eq!(config["model_type"], "electra");
    assert_eq!(config["embedding_size"], config["hidden_size"]);
    assert_eq!(fill_masks(&run), fill_masks(&out));

    let saved =
        pretext::train::checkpoint::model_tensors(&run.join("checkpoints/latest.safetensors"))
            .unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |n: &str| {
        let v = st.tensor(n).unwrap();
        pretext::model::io::tensor_f32(Path::new(n), n, &v).unwrap()
    };
    let (_, shape, two) = saved
        .iter()
        .find(|(n, ..)| n == "heads.electra.classifier.weight")
        .unwrap();
    let one = get("discriminator_predictions.dense_prediction.weight");
    let h = shape[1];
    let want: Vec<f32> = (0..h).map(|i| two[h + i] - two[i]).collect();
    assert_eq!(one, want);
    assert_eq!(
        get("electra.encoder.layer.1.output.LayerNorm.weight"),
        saved
            .iter()
            .find(|(n, ..)| n == "encoder.layers.1.ffn_norm.weight")
            .unwrap()
            .2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn crows_pairs_runs_as_a_downstream_entry_and_reaches_the_report() {
    let dir = common::scratch("crows");
    std::fs::write(
        dir.join("pairs.csv"),
        ",sent_more,sent_less,stereo_antistereo,bias_type\n\
         0,\"The poor man stole it.\",\"The rich man stole it.\",stereo,socioeconomic\n\
         1,\"She can't drive.\",\"He can't drive.\",stereo,gender\n",
    )
    .unwrap();
    let text = EXPERIMENT
        .replace("name = \"predict\"", "name = \"crows\"")
        .replace("steps = 40", "steps = 6")
        .replace("eval_every = 20", "eval_every = 6")
        .replace("checkpoint_every = 20", "checkpoint_every = 6")
        .replace("warmup_steps = 5", "warmup_steps = 1")
        .replace(
            "objectives = [[{name = \"mlm\"}], [{name = \"sop\"}]]",
            "\"training.seed\" = [1, 2]",
        )
        + "[[finetune]]\ntask = \"crows-pairs\"\ndata = \"pairs.csv\"\n";
    std::fs::write(dir.join("crows.toml"), text).unwrap();
    let (code, out, err) = pretext(&[
        "run",
        dir.join("crows.toml").to_str().unwrap(),
        "--runs-dir",
        dir.join("runs").to_str().unwrap(),
        "--reports-dir",
        dir.join("reports").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("crows-pairs score"), "{out}");
    for seed in [1, 2] {
        let res = dir.join(format!(
            "runs/crows/seed={seed}/finetune/crows-pairs/init=pretrained,seed=1"
        ));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(res.join("summary.json")).unwrap())
                .unwrap();
        let score = summary["dev"]["score"].as_f64().unwrap();
        assert!([0.0, 50.0, 100.0].contains(&score), "two pairs: {score}");
        assert_eq!(summary["dev"]["pairs"], 2.0);
        assert!(std::fs::read_to_string(res.join("metrics.jsonl"))
            .unwrap()
            .contains("score/gender"));
    }
    let report = std::fs::read_to_string(dir.join("reports/crows/README.md")).unwrap();
    assert!(report.contains("crows-pairs"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
