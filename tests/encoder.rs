//! Issue 3: the encoder against HF transformers, weight files, gradient checks, training.

use dfdx::prelude::*;
use pretext::config::{ModelConfig, NormKind, Positions, PowerNormConfig};
use pretext::model::io::{self, Naming, WeightsError};
use pretext::model::powernorm::{approximate_backward, exact_backward, BackwardMode};
use pretext::model::{Dev, Encoder, Inputs, Mode, Norm, Params};
use pretext::rng::stream;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The configuration `make_bert_fixture.py` writes.
fn tiny(norm: NormKind) -> ModelConfig {
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
    let mut enc = Encoder::new(&dev, &tiny(norm), 64, &mut stream(0, "model.init"));
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
        &tiny(NormKind::PostLn),
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
        &tiny(NormKind::PostLn),
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
            ..tiny(NormKind::PostLn)
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
            ..tiny(NormKind::PostLn)
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
        &tiny(NormKind::PostLn),
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

// ---------- PowerNorm's hand-written backward, in f64 ----------

/// `z = x / sqrt(mean_{real rows} x² + eps)`, per channel.
fn pn_forward(x: &[f64], c: usize, real: &[bool], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let n = real.iter().filter(|&&r| r).count() as f64;
    let mut var = vec![0.0; c];
    for (i, row) in x.chunks(c).enumerate() {
        if real[i] {
            for j in 0..c {
                var[j] += row[j] * row[j] / n;
            }
        }
    }
    let scale: Vec<f64> = var.iter().map(|v| (v + eps).sqrt()).collect();
    (
        x.chunks(c)
            .flat_map(|r| r.iter().zip(&scale).map(|(a, s)| a / s).collect::<Vec<_>>())
            .collect(),
        scale,
    )
}

#[test]
fn powernorm_exact_backward_matches_finite_differences_f64() {
    let (n, c) = (7, 5);
    let mut rng = stream(3, "test");
    use rand::Rng;
    let x: Vec<f64> = (0..n * c).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let r: Vec<f64> = (0..n * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let real = vec![true, true, false, true, true, true, false];
    let loss = |x: &[f64]| {
        pn_forward(x, c, &real, 1e-5)
            .0
            .iter()
            .zip(&r)
            .map(|(z, r)| z * r)
            .sum::<f64>()
    };
    let (z, scale) = pn_forward(&x, c, &real, 1e-5);
    let analytic = exact_backward(&r, &z, &scale, &real);
    let h = 1e-6;
    for i in 0..n * c {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h;
        xm[i] -= h;
        let numeric = (loss(&xp) - loss(&xm)) / (2.0 * h);
        assert!(
            (numeric - analytic[i]).abs() < 1e-7,
            "element {i}: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn powernorm_approximate_backward_is_exact_when_its_statistic_is() {
    let (n, c) = (6, 4);
    let mut rng = stream(4, "test");
    use rand::Rng;
    let x: Vec<f64> = (0..n * c).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let g: Vec<f64> = (0..n * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let real = vec![true; n];
    let (z, scale) = pn_forward(&x, c, &real, 1e-5);
    let mut mean_gz = vec![0.0; c];
    for i in 0..n {
        for j in 0..c {
            mean_gz[j] += g[i * c + j] * z[i * c + j] / n as f64;
        }
    }
    // With alpha_bkw = 0 and the running statistic equal to this batch's mean(g·z), the
    // approximation is the exact gradient.
    let mut ema = mean_gz.clone();
    let approx = approximate_backward(&g, &z, &scale, &mut ema, 0.0, &real);
    let exact = exact_backward(&g, &z, &scale, &real);
    for (a, e) in approx.iter().zip(&exact) {
        assert!((a - e).abs() < 1e-12);
    }
    // The statistic moves by the mean of g̃·z (official update): here g̃ = exact·scale.
    for j in 0..c {
        let upd: f64 = (0..n)
            .map(|i| exact[i * c + j] * scale[j] * z[i * c + j])
            .sum::<f64>()
            / n as f64;
        assert!((ema[j] - (mean_gz[j] + upd)).abs() < 1e-12);
    }
    // With a stale statistic the two differ: the approximation is a real approximation.
    let mut zero = vec![0.0; c];
    let approx = approximate_backward(&g, &z, &scale, &mut zero, 0.9, &real);
    assert!(approx.iter().zip(&exact).any(|(a, e)| (a - e).abs() > 1e-3));
}

// ---------- whole-model gradient checks through dfdx (f32) ----------

fn small_inputs(enc: &Encoder) -> Inputs {
    let ids = [2u32, 9, 14, 7, 3, 0, 2, 11, 5, 8, 19, 3];
    let types = [0u32, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1];
    let mask = [
        1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    ];
    enc.inputs(2, 6, &ids, &types, &mask).unwrap()
}

fn small_encoder(
    norm: NormKind,
    seed: u64,
    linear_bias: bool,
    positions: Positions,
) -> (Dev, Encoder) {
    let cfg = ModelConfig {
        linear_bias,
        positions,
        layers: 2,
        hidden: 8,
        heads: 2,
        ffn: 16,
        max_positions: 8,
        dropout: 0.0,
        attention_dropout: 0.0,
        layer_norm_eps: 1e-5,
        init_std: 0.5,
        norm,
        powernorm: PowerNormConfig {
            warmup: 1_000_000,
            ..Default::default()
        },
        ..tiny(norm)
    };
    let dev = Dev::seed_from_u64(0);
    let mut enc = Encoder::new(&dev, &cfg, 20, &mut stream(seed, "model.init"));
    for l in &mut enc.layers {
        for norm in [&mut l.attn_norm, &mut l.ffn_norm] {
            if let Norm::Power(p) = norm {
                p.backward = BackwardMode::Exact;
            }
        }
    }
    (dev, enc)
}

/// `L = Σ hidden ⊙ R` for a fixed random R, in training mode (PowerNorm batch statistics).
fn probe_loss(
    dev: &Dev,
    enc: &Encoder,
    inp: &Inputs,
    tape: bool,
) -> (f32, Option<Gradients<f32, Dev>>) {
    let n = inp.batch * inp.seq * enc.cfg.hidden;
    let mut rng = stream(77, "probe");
    use rand::Rng;
    let r: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let r: Tensor<(usize, usize), f32, Dev> =
        dev.tensor_from_vec(r, (inp.batch * inp.seq, enc.cfg.hidden));
    // A dropout stream with p = 0 keeps the pass in training mode without randomness.
    let mut drop = stream(0, "model.dropout");
    if tape {
        let h = enc.forward(
            dev,
            inp,
            OwnedTape::<f32, Dev>::default(),
            Mode::Train(&mut drop),
        );
        let loss = (h * r).sum::<Rank0, _>();
        let v = loss.array();
        (v, Some(loss.backward()))
    } else {
        let h = enc.forward(dev, inp, NoneTape, Mode::Train(&mut drop));
        ((h * r).sum::<Rank0, _>().array(), None)
    }
}

fn check_gradients(norm: NormKind, linear_bias: bool, positions: Positions) {
    let (dev, mut enc) = small_encoder(norm, 5, linear_bias, positions);
    let biases = enc
        .named_params()
        .iter()
        .filter(|(n, _)| n.ends_with("q.bias"))
        .count();
    assert_eq!(biases, if linear_bias { 2 } else { 0 });
    let inp = small_inputs(&enc);
    let (_, grads) = probe_loss(&dev, &enc, &inp, true);
    let mut grads = grads.unwrap();
    let analytic: Vec<(String, Vec<f32>)> = enc
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.grad(&mut grads)))
        .collect();
    let h = 1e-3f32;
    let mut checked = 0;
    for (name, g) in &analytic {
        // Three coordinates of every parameter.
        for &k in &[0usize, g.len() / 2, g.len() - 1] {
            let nudge = |enc: &mut Encoder, delta: f32| {
                enc.visit_mut("", &mut |n, mut p| {
                    if &n == name {
                        let mut v = p.to_vec();
                        v[k] += delta;
                        p.copy_from(&v);
                    }
                });
            };
            nudge(&mut enc, h);
            let up = probe_loss(&dev, &enc, &inp, false).0;
            nudge(&mut enc, -2.0 * h);
            let down = probe_loss(&dev, &enc, &inp, false).0;
            nudge(&mut enc, h);
            let numeric = (up - down) / (2.0 * h);
            let tol = 2e-2 * (1.0 + numeric.abs().max(g[k].abs()));
            assert!(
                (numeric - g[k]).abs() < tol,
                "{norm:?} {name}[{k}]: analytic {} vs numeric {numeric}",
                g[k]
            );
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[test]
fn gradients_match_finite_differences_post_ln() {
    check_gradients(NormKind::PostLn, true, Positions::Learned);
}

#[test]
fn gradients_match_finite_differences_pre_ln() {
    check_gradients(NormKind::PreLn, true, Positions::Learned);
}

#[test]
fn gradients_match_finite_differences_powernorm() {
    check_gradients(NormKind::Powernorm, true, Positions::Learned);
}

/// `model.linear_bias = false`: the projections have no biases, and the rest is still exact.
#[test]
fn gradients_match_finite_differences_without_linear_biases() {
    check_gradients(NormKind::PreLn, false, Positions::Learned);
}

/// `model.positions = "alibi"`: no position table, a distance penalty in every head, and the
/// gradients of what remains still exact.
#[test]
fn gradients_match_finite_differences_with_alibi() {
    let (_, enc) = small_encoder(NormKind::PreLn, 5, true, Positions::Alibi);
    assert!(enc.embeddings.position.is_none());
    assert!(!enc
        .named_params()
        .iter()
        .any(|(n, _)| n.contains("position")));
    check_gradients(NormKind::PreLn, true, Positions::Alibi);
}

/// With ALiBi the encoder knows order only through distances: reversing a sequence (types
/// and padding alike) reverses its hidden states exactly, which learned positions never do.
#[test]
fn alibi_encoder_sees_distances_not_absolute_positions() {
    for positions in [Positions::Alibi, Positions::Learned] {
        let (dev, enc) = small_encoder(NormKind::PreLn, 5, true, positions);
        let ids = [2u32, 7, 3, 11, 5, 9];
        let rev: Vec<u32> = ids.iter().rev().copied().collect();
        let hidden = |ids: &[u32]| {
            let inp = enc.inputs(1, 6, ids, &[0; 6], &[1.0; 6]).unwrap();
            enc.forward(&dev, &inp, NoneTape, Mode::Eval).as_vec()
        };
        let (fwd, bwd) = (hidden(&ids), hidden(&rev));
        let h = enc.cfg.hidden;
        let worst = (0..6)
            .flat_map(|i| (0..h).map(move |c| (i, c)))
            .map(|(i, c)| (fwd[i * h + c] - bwd[(5 - i) * h + c]).abs())
            .fold(0.0f32, f32::max);
        match positions {
            Positions::Alibi => assert!(worst < 1e-5, "alibi: reversed differs by {worst}"),
            Positions::Learned => assert!(worst > 1e-2, "learned: reversal changed nothing"),
        }
    }
}

/// Each variant, trained by plain gradient descent to reconstruct its input tokens through
/// the tied embedding, lowers its loss on a fixed batch.
#[test]
fn loss_goes_down_for_every_variant() {
    for norm in NormKind::ALL {
        let dev = Dev::seed_from_u64(0);
        let cfg = ModelConfig {
            hidden: 16,
            heads: 2,
            ffn: 32,
            max_positions: 8,
            norm,
            dropout: 0.1,
            attention_dropout: 0.0,
            powernorm: PowerNormConfig {
                warmup: 5,
                ..Default::default()
            },
            ..tiny(norm)
        };
        let mut enc = Encoder::new(&dev, &cfg, 20, &mut stream(1, "model.init"));
        let inp = small_inputs(&enc);
        let mut drop = stream(1, "model.dropout");
        let n = inp.batch * inp.seq;
        let mut onehot = vec![0.0f32; n * 20];
        for (i, &t) in inp.ids.iter().enumerate() {
            onehot[i * 20 + t] = 1.0;
        }
        let target: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(onehot, (n, 20));
        let mut losses = vec![];
        for _ in 0..30 {
            let h = enc.forward(
                &dev,
                &inp,
                OwnedTape::<f32, Dev>::default(),
                Mode::Train(&mut drop),
            );
            let logits = h.matmul(enc.embeddings.word.clone().permute::<_, Axes2<1, 0>>());
            let loss = cross_entropy_with_logits_loss(logits, target.clone());
            losses.push(loss.array());
            let mut grads = loss.backward();
            let all: Vec<(String, Vec<f32>)> = enc
                .named_params()
                .into_iter()
                .map(|(n, p)| (n, p.grad(&mut grads)))
                .collect();
            enc.visit_mut("", &mut |name, mut p| {
                let g = &all.iter().find(|(n, _)| *n == name).unwrap().1;
                let v: Vec<f32> = p
                    .to_vec()
                    .iter()
                    .zip(g)
                    .map(|(w, g)| w - 0.05 * g)
                    .collect();
                p.copy_from(&v);
            });
        }
        assert!(losses.iter().all(|l| l.is_finite()), "{norm:?}: {losses:?}");
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(last < 0.5 * first, "{norm:?}: loss {first} → {last}");
    }
}

#[test]
fn gelu_derivative_matches_finite_differences_f64() {
    use pretext::model::gelu::{gelu_df, gelu_f};
    for i in -40..=40 {
        let x = i as f64 * 0.1;
        let h = 1e-6;
        let numeric = (gelu_f(x + h, libm::erf) - gelu_f(x - h, libm::erf)) / (2.0 * h);
        assert!((numeric - gelu_df(x, libm::erf)).abs() < 1e-8, "x = {x}");
    }
    // Matches HF's erf GELU values: gelu(1) = 0.8413447, gelu(-1) = -0.1586553.
    assert!((gelu_f(1.0, libm::erf) - 0.841_344_746).abs() < 1e-8);
    assert!((gelu_f(-1.0, libm::erf) + 0.158_655_254).abs() < 1e-8);
}
