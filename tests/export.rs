//! `pretext export RUN --hf OUT` (issue 17): a post-LN run as HF BERT, a pre-LN one as
//! RobertaPreLayerNorm, an ELECTRA run as HF ELECTRA, each read back (by pretext's HF importer,
//! or by fill from the export) as the run it came from; PowerNorm is refused and nothing written.

mod common;

use common::trained::{pretext, run_dir, runs, EXPERIMENT};
use std::path::{Path, PathBuf};

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
