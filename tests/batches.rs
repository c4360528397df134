//! `pretext batches`: the file another implementation trains on (benches/hf_parity.py) holds
//! exactly the token ids a run masks and trains on, and the experiment's shared evaluation set.

mod common;

use pretext::config::LoadedExperiment;
use pretext::data::{self, BatchStream, MaskingConfig, PairMode, StreamSettings};
use pretext::train::evaluation::{EvalSet, Layout, EVAL_BATCH};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

const EXPERIMENT: &str = r#"
name = "dump"
[data]
corpus = ["embedded"]
heldout_fraction = 0.2
[tokenizer]
vocab_size = 600
[model]
layers = 1
hidden = 16
heads = 2
ffn = 32
max_positions = 64
[[objectives]]
name = "mlm"
[optimizer]
warmup_steps = 2
[training]
steps = 10
batch_size = 4
seq_len = 64
eval_batches = 3
[ablation]
"training.seed" = [1, 2]
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = common::scratch(&format!("batches-{name}"));
    std::fs::write(dir.join("dump.toml"), EXPERIMENT).unwrap();
    dir
}

fn batches(dir: &Path, args: &[&str]) -> std::process::Output {
    common::pretext()
        .arg("batches")
        .arg(dir.join("dump.toml"))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(args)
        .output()
        .unwrap()
}

fn column(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<i64>) {
    let t = st.tensor(name).unwrap();
    let d = t.data();
    let v = match t.dtype() {
        safetensors::Dtype::U16 => d
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
            .collect(),
        safetensors::Dtype::I32 => d
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        safetensors::Dtype::U8 => d.iter().map(|&b| b as i64).collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    (t.shape().to_vec(), v)
}

#[test]
fn the_file_holds_the_ids_the_run_masks_and_the_shared_evaluation_set() {
    let dir = scratch("ids");
    let out = dir.join("seed2.safetensors");
    let o = batches(
        &dir,
        &[
            "--only",
            "seed=2",
            "--steps",
            "7",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["variant"], "seed=2");
    assert!(meta["config"].contains("seed = 2"), "{}", meta["config"]);

    // Rebuild what the run reads, through the library, with the tokenizer the command saved.
    let file = dir.join("dump.toml");
    let exp = LoadedExperiment::load(&file).unwrap();
    let cfg = &exp
        .runs
        .iter()
        .find(|r| r.variant == "seed=2")
        .unwrap()
        .config;
    let prepared = data::prepare(
        &cfg.data,
        &cfg.tokenizer,
        &dir,
        Some(&dir.join("runs/dump")),
    )
    .unwrap();
    // The run's own stream masks; undoing its masks must give the file's ids, row for row.
    let mut masked = BatchStream::new(
        prepared.train.clone(),
        prepared.tokenizer.clone(),
        StreamSettings {
            seq_len: 64,
            short_seq_prob: cfg.training.short_seq_prob,
            mode: PairMode::Single,
            masking: Some(MaskingConfig::default()),
        },
        2,
        "data.train",
    )
    .unwrap();
    let (shape, ids) = column(&st, "train.input_ids");
    let (_, mask) = column(&st, "train.attention_mask");
    assert_eq!(shape, vec![7 * 4, 64]);
    let mut changed = 0;
    for step in 0..7 {
        let mut b = masked.next_batch(4).unwrap();
        for (&p, &l) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            changed += usize::from(b.input_ids[p] != l);
            b.input_ids[p] = l;
        }
        let rows = step * 4 * 64..(step + 1) * 4 * 64;
        let want: Vec<i64> = b.input_ids.iter().map(|&i| i as i64).collect();
        assert_eq!(ids[rows.clone()], want[..], "step {step}");
        let want: Vec<i64> = b.attention_mask.iter().map(|&m| (m > 0.0) as i64).collect();
        assert_eq!(mask[rows], want[..], "step {step}");
    }
    assert!(changed > 20, "the masked stream changed only {changed} ids");

    // The evaluation set: the fingerprint every run records, and its masked positions.
    let set = EvalSet::build(&prepared, 64, 3).unwrap().unwrap();
    assert_eq!(meta["eval_fingerprint"], set.fingerprint);
    let eval = set
        .batches(Layout {
            masked: true,
            pair: None,
        })
        .unwrap();
    let (shape, ids) = column(&st, "eval.input_ids");
    let (_, labels) = column(&st, "eval.labels");
    assert_eq!(shape, vec![3 * EVAL_BATCH, 64]);
    let mut predicted = 0;
    for (k, b) in eval.iter().enumerate() {
        let base = k * EVAL_BATCH * 64;
        for (i, &id) in b.input_ids.iter().enumerate() {
            assert_eq!(ids[base + i], id as i64);
        }
        for (&p, &l) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            assert_eq!(labels[base + p], l as i64);
        }
        predicted += b.mlm_positions.len();
    }
    assert_eq!(labels.iter().filter(|&&l| l != -100).count(), predicted);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_variants_and_overwriting_the_corpus_are_refused_by_name() {
    let dir = scratch("errors");
    let o = batches(&dir, &["--only", "seed=9", "--steps", "1", "--out", "x.st"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no variant `seed=9`") && err.contains("seed=1, seed=2"),
        "{err}"
    );

    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "One sentence here. Another one there.\n\nA second document.\n",
    )
    .unwrap();
    let text = std::fs::read(&corpus).unwrap();
    std::fs::write(
        dir.join("dump.toml"),
        EXPERIMENT.replace(r#"["embedded"]"#, r#"["corpus.txt"]"#),
    )
    .unwrap();
    let o = batches(&dir, &["--steps", "1", "--out", corpus.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("corpus.txt"), "{err}");
    assert_eq!(
        std::fs::read(&corpus).unwrap(),
        text,
        "the corpus was changed"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
