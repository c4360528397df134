//! Issue 3: the encoder's gradients — PowerNorm's hand-written backward against finite
//! differences in f64, the whole model's through dfdx against finite differences in f32 for
//! every norm, without linear biases and with ALiBi — and every variant learning.

mod common;

use dfdx::prelude::*;
use pretext::config::{ModelConfig, NormKind, Positions, PowerNormConfig};
use pretext::model::powernorm::{approximate_backward, exact_backward, BackwardMode};
use pretext::model::{Dev, Encoder, Inputs, Mode, Norm, Params};
use pretext::rng::stream;

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
        ..common::bert_tiny(norm)
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
            ..common::bert_tiny(norm)
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
