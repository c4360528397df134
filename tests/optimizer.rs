//! Issue 4: the optimiser's arithmetic — AdamW against a step computed by hand, weight decay
//! by kind against BERT's rule by name, where ε joins the update, the schedules and global
//! clipping.

mod common;

use pretext::config::{OptimizerConfig, Schedule};
use pretext::model::Params;
use pretext::train;
use pretext::train::optimizer::{clip_scale, decays, global_norm, learning_rate, AdamW};

#[test]
fn adamw_matches_hand_computed_step() {
    let cfg = OptimizerConfig {
        lr: 0.1,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = AdamW::new(&[vec![1, 1], vec![1]]);
    let mut p = vec![vec![1.0f32], vec![1.0f32]];
    opt.update(&cfg, 0.1, &mut p, &[vec![0.5], vec![0.5]]);
    // PyTorch AdamW: p ← p − lr·wd·p = 0.999, then p ← p − lr · m̂/(√v̂ + ε) = 0.999 − 0.1.
    assert!((p[0][0] - 0.899).abs() < 1e-6, "{}", p[0][0]);
    // No decay on biases: 1 − 0.1.
    assert!((p[1][0] - 0.9).abs() < 1e-6, "{}", p[1][0]);
}

/// Weight decay by kind (matrices decay, vectors do not) exempts exactly BERT's set — biases
/// and normalisation parameters — in models with every objective's head and every norm.
#[test]
fn decay_by_kind_is_berts_rule_by_name() {
    let heads = r#"[[objectives]]
name = "mlm"
[[objectives]]
name = "nsp"
[[objectives]]
name = "contrastive"
[[objectives]]
name = "electra"
options = { generator_size = 0.5 }"#;
    for norm in ["post-ln", "pre-ln", "powernorm"] {
        let cfg = common::small_run(&format!("{heads}\n[model.powernorm]\nwarmup = 2"));
        let mut cfg = cfg;
        cfg.model.norm = match norm {
            "pre-ln" => pretext::config::NormKind::PreLn,
            "powernorm" => pretext::config::NormKind::Powernorm,
            _ => pretext::config::NormKind::PostLn,
        };
        let bundle = pretext::train::Bundle::new(&pretext::model::device(0).unwrap(), &cfg, 400);
        let mut exempt = 0;
        for (name, p) in bundle.named_params() {
            let by_name = !(name.ends_with(".bias") || name.contains("norm."));
            assert_eq!(decays(&p.shape()), by_name, "{norm}: {name}");
            exempt += usize::from(!by_name);
        }
        assert!(exempt > 10, "{norm}: only {exempt} exempt parameters");
    }
}

/// Where ε joins the update, by hand at step 1 (m̂ = g, v̂ = g²) with a gradient as small as ε:
/// torch's `lr·g/(|g| + ε)` = 0.05; HF-legacy's `lr·√(1−β₂)·g/(√(1−β₂)|g| + ε)` ≈ 0.003065.
#[test]
fn eps_placement_follows_torch_or_hf_legacy() {
    use pretext::config::EpsPlacement;
    let step = |placement| {
        let cfg = OptimizerConfig {
            eps: 1e-4,
            eps_placement: placement,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(&[vec![1, 1]]);
        let mut p = vec![vec![1.0f32]];
        opt.update(&cfg, 0.1, &mut p, &[vec![1e-4]]);
        1.0 - p[0][0] as f64
    };
    assert!((step(EpsPlacement::Torch) - 0.05).abs() < 1e-6);
    let c = 0.001f64.sqrt();
    assert!((step(EpsPlacement::HfLegacy) - 0.1 * c / (c + 1.0)).abs() < 1e-6);
    // The default stays out of the resolved settings, so older checkpoints still resume.
    let text = train::settings::resolved_text(&common::small_run(""));
    assert!(!text.contains("eps_placement"), "{text}");
}

#[test]
fn schedule_and_clipping() {
    let mut cfg = OptimizerConfig {
        lr: 1.0,
        warmup_steps: 10,
        schedule: Schedule::Linear,
        ..Default::default()
    };
    assert!((learning_rate(&cfg, 5, 110) - 0.5).abs() < 1e-12);
    assert!((learning_rate(&cfg, 10, 110) - 1.0).abs() < 1e-12);
    assert!((learning_rate(&cfg, 60, 110) - 0.5).abs() < 1e-12);
    assert!(learning_rate(&cfg, 110, 110).abs() < 1e-12);
    cfg.schedule = Schedule::Cosine;
    assert!((learning_rate(&cfg, 60, 110) - 0.5).abs() < 1e-12);
    assert!(
        (learning_rate(&cfg, 35, 110) - (0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos()))).abs()
            < 1e-12
    );
    let mut g = vec![vec![3.0f32], vec![4.0]];
    assert!((clip_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-9);
    assert!((g[0][0] - 0.6).abs() < 1e-5 && (g[1][0] - 0.8).abs() < 1e-5);
    let mut g = vec![vec![0.3f32]];
    clip_global_norm(&mut g, 1.0);
    assert_eq!(g[0][0], 0.3);
    // A limit of 0 disables clipping.
    assert_eq!(clip_scale(5.0, 0.0), 1.0);
}

/// Global clipping as frameworks write it, the gradients scaled in place (`clip_grad_norm_`):
/// the reference the training loop's folded-in factor is checked against. Returns the norm
/// before clipping.
fn clip_global_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    let s = clip_scale(norm, max_norm);
    for x in grads.iter_mut().flatten() {
        *x *= s;
    }
    norm
}

/// The step the training loop takes — the clipping's factor handed to `AdamW::apply`, the new
/// values written into a fresh buffer by a kernel compiled per instruction set, in chunks over
/// the threads — against AdamW written out one element at a time after the gradients were
/// clipped in place: the same floats, bit for bit, for parameters with and without weight
/// decay, lengths across the chunks' edges, over three steps (the moments carried along).
#[test]
fn fused_step_is_the_elementwise_step_after_clipping() {
    use common::values::random;
    let cfg = OptimizerConfig {
        lr: 1e-3,
        weight_decay: 0.01,
        clip: 1.0,
        ..Default::default()
    };
    let shapes = [vec![70_001], vec![3, 16_385], vec![2, 3], vec![17]];
    let mut fused = AdamW::new(&shapes);
    let mut params: Vec<Vec<f32>> = (0..shapes.len())
        .map(|i| random(shapes[i].iter().product(), 10 + i as u64, 1.0))
        .collect();
    let mut reference = params.clone();
    let (mut m, mut v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (
        params.iter().map(|p| vec![0.0; p.len()]).collect(),
        params.iter().map(|p| vec![0.0; p.len()]).collect(),
    );
    let mut clipped = 0;
    for step in 1..=3u64 {
        // Gradients whose norm is above the limit on steps 1 and 3, below it on step 2.
        let size = if step == 2 { 1e-5 } else { 0.5 };
        let mut grads: Vec<Vec<f32>> = (0..shapes.len())
            .map(|i| random(params[i].len(), 100 * step + i as u64, size))
            .collect();
        let norm = global_norm(&grads);
        let scale = clip_scale(norm, cfg.clip);
        clipped += usize::from(scale != 1.0);
        let c = fused.coefficients(&cfg, cfg.lr);
        for (i, p) in params.iter_mut().enumerate() {
            *p = fused.apply(&c, i, p, &grads[i], scale);
        }
        // The reference: clipped in place, then one element at a time.
        assert_eq!(clip_global_norm(&mut grads, cfg.clip), norm);
        let [b1, b2] = cfg.betas.map(|b| b as f32);
        let (eps, step_size, wd) = (c.eps as f32, c.step_size as f32, c.decay as f32);
        for (i, p) in reference.iter_mut().enumerate() {
            for j in 0..p.len() {
                let g = grads[i][j];
                m[i][j] = b1 * m[i][j] + (1.0 - b1) * g;
                v[i][j] = b2 * v[i][j] + (1.0 - b2) * g * g;
                if decays(&shapes[i]) {
                    p[j] -= wd * p[j];
                }
                p[j] -= step_size * m[i][j] / (v[i][j].sqrt() + eps);
            }
        }
        for i in 0..shapes.len() {
            let what = format!("step {step}, parameter {i}");
            assert!(
                reference[i]
                    .iter()
                    .zip(&params[i])
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: values"
            );
            assert_eq!(fused.m[i], m[i], "{what}: first moment");
            assert_eq!(fused.v[i], v[i], "{what}: second moment");
        }
    }
    assert_eq!(
        clipped, 2,
        "the case without clipping and the cases with it"
    );
}

/// The global norm, summed in fixed lanes and chunks, against a plain sum in f64.
#[test]
fn global_norm_is_the_l2_norm_of_every_gradient() {
    let grads: Vec<Vec<f32>> = [1, 15, 16, 17, 65_537, 200_000]
        .iter()
        .enumerate()
        .map(|(i, &n)| common::values::random(n, i as u64, 2.0))
        .collect();
    let plain = grads
        .iter()
        .flatten()
        .map(|&x| x as f64 * x as f64)
        .sum::<f64>()
        .sqrt();
    let norm = global_norm(&grads);
    assert!(
        (norm - plain).abs() < 1e-12 * plain,
        "{norm} against {plain}"
    );
}

/// A gradient with a NaN or an infinity stops the step before anything changes, and names
/// the first such parameter: the check is the global norm (not finite exactly then), no
/// longer a pass of its own over every gradient.
#[test]
fn a_non_finite_gradient_is_refused_before_the_step() {
    use pretext::train::host_step::update;
    let cfg = common::small_run("");
    let mut bundle = pretext::train::Bundle::new(&pretext::model::device(0).unwrap(), &cfg, 400);
    let weights = |b: &pretext::train::Bundle| -> Vec<Vec<f32>> {
        b.named_params().iter().map(|(_, p)| p.to_vec()).collect()
    };
    let before = weights(&bundle);
    let mut optim = AdamW::for_params(&bundle);
    let finite: Vec<Vec<f32>> = before.iter().map(|w| vec![1e-3; w.len()]).collect();
    for (bad, value) in [(3, f32::NAN), (7, f32::INFINITY), (7, f32::NEG_INFINITY)] {
        let mut grads = finite.clone();
        let mid = grads[bad].len() / 2;
        grads[bad][mid] = value;
        grads[bad + 2][0] = value;
        let got = update(&mut bundle, &grads, &mut optim, &cfg.optimizer, 1e-3);
        assert_eq!(got, Err(bad), "{value}");
        assert_eq!(weights(&bundle), before, "{value}: the weights changed");
        assert_eq!(optim.step, 0, "{value}: the optimiser stepped");
    }
    let norm = update(&mut bundle, &finite, &mut optim, &cfg.optimizer, 1e-3).unwrap();
    let count: usize = before.iter().map(Vec::len).sum();
    assert!(
        (norm - 1e-3f32 as f64 * (count as f64).sqrt()).abs() < 1e-12 * norm,
        "{norm}"
    );
    assert_eq!(optim.step, 1);
    assert_ne!(weights(&bundle), before);
}
