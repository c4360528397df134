//! Issue 3: the encoder against HF transformers (post-LN BERT, pre-LN RoBERTa-PreLayerNorm),
//! its weight files, and its refusals of bad inputs. The gradient checks are in
//! tests/gradients.rs.

mod common;

use dfdx::prelude::*;
use pretext::config::{ModelConfig, NormKind};
use pretext::model::io::{self, Naming, WeightsError};
use pretext::model::{Dev, Encoder, Inputs, Mode, Params};
use pretext::rng::stream;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Io {
    inputs: Inputs,
    tensors: std::collections::HashMap<String, Vec<f32>>,
}

fn read_io(enc: &Encoder) -> Io {
    let bytes = std::fs::read(fixture("bert_tiny_io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = std::collections::HashMap::new();
    for (name, view) in st.tensors() {
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, v);
    }
    let u = |k: &str| tensors[k].iter().map(|&v| v as u32).collect::<Vec<u32>>();
    let inputs = enc
        .inputs(
            2,
            16,
            &u("input_ids"),
            &u("token_type_ids"),
            &tensors["attention_mask"],
        )
        .unwrap();
    Io { inputs, tensors }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn hf_encoder(norm: NormKind) -> (Dev, Encoder) {
    let dev = Dev::seed_from_u64(0);
    let mut enc = Encoder::new(
        &dev,
        &common::bert_tiny(norm),
        64,
        &mut stream(0, "model.init"),
    );
    let unused = io::load(
        &mut enc,
        &fixture("bert_tiny_weights.safetensors"),
        Naming::HfBert,
    )
    .unwrap();
    if norm == NormKind::PostLn {
        assert_eq!(
            unused,
            vec!["encoder.final_norm.bias", "encoder.final_norm.weight"]
        );
    }
    (dev, enc)
}

#[test]
fn post_ln_matches_hf_bert_model() {
    let (dev, enc) = hf_encoder(NormKind::PostLn);
    let io = read_io(&enc);
    let hidden = enc.forward(&dev, &io.inputs, NoneTape, Mode::Eval);
    let err = max_abs_diff(&hidden.as_vec(), &io.tensors["post_ln.hidden"]);
    assert!(
        err < 1e-4,
        "hidden states differ from HF BertModel by {err}"
    );
    let pooled = enc.pool(&dev, hidden, 2, 16);
    let err = max_abs_diff(&pooled.as_vec(), &io.tensors["post_ln.pooled"]);
    assert!(
        err < 1e-4,
        "pooled output differs from HF BertModel by {err}"
    );
}

#[test]
fn pre_ln_matches_reference() {
    let (dev, enc) = hf_encoder(NormKind::PreLn);
    let io = read_io(&enc);
    let hidden = enc.forward(&dev, &io.inputs, NoneTape, Mode::Eval);
    let err = max_abs_diff(&hidden.as_vec(), &io.tensors["pre_ln.hidden"]);
    assert!(
        err < 1e-4,
        "pre-LN hidden states differ from the reference by {err}"
    );
    // And the placements really differ: post-LN output is not pre-LN's.
    assert!(max_abs_diff(&hidden.as_vec(), &io.tensors["post_ln.hidden"]) > 1e-2);
}

/// Every tensor of a safetensors fixture as f32 values.
fn read_tensors(name: &str) -> std::collections::HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n.clone(), io::tensor_f32(Path::new(name), &n, &v).unwrap()))
        .collect()
}

/// A pre-LN model is HF's RobertaPreLayerNorm under other names (src/roberta_prelayernorm.rs):
/// the directory transformers saved (make_roberta_prelayernorm_fixture.py) loads through
/// pretext's importer and gives HF's hidden states and MLM logits at every real token.
#[test]
fn pre_ln_matches_hf_roberta_prelayernorm() {
    use pretext::objectives::{mlm::Mlm, HeadDims};
    let hf = pretext::hf::import::open(&fixture("roberta_prelayernorm")).unwrap();
    let cfg = hf.config.model_config();
    assert_eq!((cfg.norm, cfg.max_positions), (NormKind::PreLn, 32));
    let dev = Dev::seed_from_u64(0);
    let mut rng = stream(0, "model.init");
    let mut enc = Encoder::new(&dev, &cfg, 64, &mut rng);
    let mut head = Mlm::new(&dev, &HeadDims::of(&cfg, 64), &mut rng);
    assert!(pretext::hf::import::load_masked_lm(&hf, &mut enc, &mut head).unwrap());

    let t = read_tensors("roberta_prelayernorm_io.safetensors");
    let u = |k: &str| t[k].iter().map(|&v| v as u32).collect::<Vec<u32>>();
    let mask = &t["attention_mask"];
    let inputs = enc
        .inputs(2, 16, &u("input_ids"), &u("token_type_ids"), mask)
        .unwrap();
    let hidden = enc.forward(&dev, &inputs, NoneTape, Mode::Eval);
    let rows: Vec<usize> = (0..32).collect();
    let logits = head.logits(hidden.clone(), &rows, &dev, &enc).as_vec();
    let hidden = hidden.as_vec();
    let (mut worst_h, mut worst_l, mut real) = (0.0f32, 0.0f32, 0);
    for r in rows.into_iter().filter(|&r| mask[r] > 0.0) {
        real += 1;
        let (h, v) = (32, 64);
        worst_h = worst_h.max(max_abs_diff(
            &hidden[r * h..(r + 1) * h],
            &t["hidden"][r * h..(r + 1) * h],
        ));
        worst_l = worst_l.max(max_abs_diff(
            &logits[r * v..(r + 1) * v],
            &t["logits"][r * v..(r + 1) * v],
        ));
    }
    assert_eq!(real, 27, "the fixture pads 5 of row 1's 16 tokens");
    assert!(worst_h < 1e-4, "hidden states differ from HF by {worst_h}");
    assert!(worst_l < 1e-4, "MLM logits differ from HF by {worst_l}");
}

#[test]
fn weights_round_trip_through_safetensors() {
    let (dev, enc) = hf_encoder(NormKind::PostLn);
    let bytes = io::to_bytes(&enc);
    let mut other = Encoder::new(
        &dev,
        &common::bert_tiny(NormKind::PostLn),
        64,
        &mut stream(9, "model.init"),
    );
    io::load_bytes(&mut other, &bytes, Path::new("mem"), Naming::Pretext).unwrap();
    let io_ = read_io(&enc);
    let a = enc
        .forward(&dev, &io_.inputs, NoneTape, Mode::Eval)
        .as_vec();
    let b = other
        .forward(&dev, &io_.inputs, NoneTape, Mode::Eval)
        .as_vec();
    assert_eq!(a, b);
    let names: Vec<String> = enc.named_params().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"encoder.layers.1.attn.q.weight".to_string()));
    assert!(names.contains(&"encoder.layers.0.ffn_norm.bias".to_string()));
}

#[test]
fn bad_weight_files_are_refused_by_file_and_tensor() {
    let dev = Dev::seed_from_u64(0);
    let path = fixture("bert_tiny_weights.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let mut enc = Encoder::new(
        &dev,
        &common::bert_tiny(NormKind::PostLn),
        64,
        &mut stream(0, "model.init"),
    );
    let before = io::to_bytes(&enc);

    let e = io::load_bytes(&mut enc, &bytes[..bytes.len() / 2], &path, Naming::HfBert).unwrap_err();
    assert!(
        matches!(e, WeightsError::Format { .. }) && e.to_string().contains("bert_tiny_weights"),
        "{e}"
    );

    let mut wide = Encoder::new(
        &dev,
        &ModelConfig {
            hidden: 16,
            ffn: 32,
            ..common::bert_tiny(NormKind::PostLn)
        },
        64,
        &mut stream(0, "i"),
    );
    let e = io::load_bytes(&mut wide, &bytes, &path, Naming::HfBert).unwrap_err();
    assert!(
        matches!(e, WeightsError::Shape { .. })
            && e.to_string().contains("embeddings.word_embeddings.weight"),
        "{e}"
    );

    let e = io::load_bytes(&mut enc, &bytes, &path, Naming::Pretext).unwrap_err();
    assert!(
        e.to_string().contains("embeddings.word.weight") && e.to_string().contains("missing"),
        "{e}"
    );

    let mut deep = Encoder::new(
        &dev,
        &ModelConfig {
            layers: 3,
            ..common::bert_tiny(NormKind::PostLn)
        },
        64,
        &mut stream(0, "i"),
    );
    let e = io::load_bytes(&mut deep, &bytes, &path, Naming::HfBert).unwrap_err();
    assert!(e.to_string().contains("encoder.layer.2."), "{e}");
    assert_eq!(
        io::to_bytes(&enc),
        before,
        "a refused file must leave the model untouched"
    );
}

#[test]
fn out_of_range_inputs_are_errors_not_panics() {
    let dev = Dev::seed_from_u64(0);
    let enc = Encoder::new(
        &dev,
        &common::bert_tiny(NormKind::PostLn),
        64,
        &mut stream(0, "model.init"),
    );
    assert!(enc
        .inputs(1, 2, &[1, 64], &[0, 0], &[1.0, 1.0])
        .unwrap_err()
        .to_string()
        .contains("token id 64"));
    assert!(enc
        .inputs(1, 2, &[1, 2], &[0, 2], &[1.0, 1.0])
        .unwrap_err()
        .to_string()
        .contains("token type 2"));
    assert!(enc
        .inputs(1, 40, &[1; 40], &[0; 40], &[1.0; 40])
        .unwrap_err()
        .to_string()
        .contains("max_positions"));
    assert!(enc.inputs(2, 2, &[1, 2], &[0, 0], &[1.0, 1.0]).is_err());
}
