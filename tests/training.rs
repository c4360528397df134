//! Issue 4: the training loop — exact resume, divergence guard, optimiser arithmetic, and a
//! short version of the README's quickstart.

mod common;

use pretext::config::{Experiment, LoadedExperiment, NormKind, OptimizerConfig, Schedule};
use pretext::data::{self, Prepared};
use pretext::model::Params;
use pretext::train::optimizer::{clip_global_norm, decays, learning_rate, AdamW};
use pretext::train::{self, TrainError, Trainer};
use std::path::Path;

fn experiment(extra: &str) -> Experiment {
    let text = format!(
        r#"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 400
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 32
dropout = 0.1
attention_dropout = 0.1
[optimizer]
warmup_steps = 4
[training]
steps = 20
batch_size = 8
seq_len = 32
checkpoint_every = 10
eval_every = 10
eval_batches = 2
log_every = 5
grad_accum = 2
{extra}
"#
    );
    LoadedExperiment::from_str(&text, Path::new("test.toml"))
        .unwrap()
        .runs
        .remove(0)
        .config
}

/// The data of `cfg`, with a tokenizer shared by the tests of this process that ask for the
/// same one. The file is named after the tokenizer settings: the quickstart test (vocabulary
/// 1,200) must never load the 400-token vocabulary another test saved first.
fn prepared(cfg: &Experiment) -> Prepared {
    let t = &cfg.tokenizer;
    let dir = std::env::temp_dir().join(format!(
        "pretext-tok-{}/{}-{}-{}",
        std::process::id(),
        t.vocab_size,
        t.lowercase,
        t.min_frequency
    ));
    std::fs::create_dir_all(&dir).unwrap();
    data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), Some(&dir)).unwrap()
}

#[test]
fn resume_continues_bit_identically() {
    let variants = [
        r#"[[objectives]]
name = "mlm"
[[objectives]]
name = "sop""#,
        r#"[[objectives]]
name = "mlm"
[[objectives]]
name = "nsp"
weight = 0.5
[model.powernorm]
warmup = 6"#,
        r#"[[objectives]]
name = "mlm"
[[objectives]]
name = "contrastive"
weight = 0.2"#,
        // Samples and a second encoder pass, both drawn from the saved dropout stream.
        r#"[[objectives]]
name = "electra"
options = { mask_prob = 0.2, discriminator_weight = 10 }"#,
        // A generator with an encoder of its own, beside MLM on the shared pass.
        r#"[[objectives]]
name = "mlm"
[[objectives]]
name = "electra"
options = { generator_size = 0.5 }"#,
    ];
    for (i, extra) in variants.iter().enumerate() {
        let mut cfg = experiment(extra);
        if i == 1 {
            cfg.model.norm = pretext::config::NormKind::Powernorm;
        }
        if i == 2 {
            cfg.model.norm = pretext::config::NormKind::PreLn;
        }
        let data = prepared(&cfg);
        let mut straight = Trainer::new(&cfg, &data).unwrap();
        let full: Vec<f64> = (0..20)
            .map(|_| straight.train_step().unwrap().0.total_loss)
            .collect();

        let dir = std::env::temp_dir().join(format!("pretext-resume-{}-{i}", std::process::id()));
        let ckpt = dir.join("ckpt.safetensors");
        let mut first = Trainer::new(&cfg, &data).unwrap();
        let mut halves: Vec<f64> = (0..10)
            .map(|_| first.train_step().unwrap().0.total_loss)
            .collect();
        first.save_checkpoint(&ckpt).unwrap();
        drop(first);
        let mut second = Trainer::new(&cfg, &data).unwrap();
        second.load_checkpoint(&ckpt).unwrap();
        assert_eq!(second.step, 10);
        halves.extend((0..10).map(|_| second.train_step().unwrap().0.total_loss));
        assert_eq!(full, halves, "variant {i}: losses after resume differ");
        assert!(
            common::weights(&straight) == common::weights(&second),
            "variant {i}: final weights differ"
        );
        let states = common::running_states(&straight.bundle);
        assert_eq!(
            states.len(),
            if i == 1 { 2 * 2 } else { 0 },
            "variant {i}: two PowerNorms a layer, two layers"
        );
        assert_eq!(
            states,
            common::running_states(&second.bundle),
            "variant {i}: PowerNorm statistics differ"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The thread count is a resource, not a setting: a run trained 3 steps on 2 threads and
/// continued on 1 ends with the bits of one trained on 1 thread throughout (the shape is wide
/// enough for the matmuls and fused ops to split over threads), so resume accepts it — and
/// the settings comparison still names any real change.
#[test]
fn a_run_continues_on_another_thread_count_bit_identically() {
    let wide = |threads: usize| {
        let mut cfg = experiment("[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"sop\"");
        cfg.model.hidden = 128;
        cfg.model.ffn = 512;
        cfg.model.heads = 4;
        cfg.model.max_positions = 64;
        cfg.training.seq_len = 64;
        cfg.training.batch_size = 16;
        cfg.training.threads = threads;
        cfg
    };
    let (one, two) = (wide(1), wide(2));
    let data = prepared(&one);
    let straight = common::pool(1).install(|| {
        let mut t = Trainer::new(&one, &data).unwrap();
        let losses: Vec<f64> = (0..6)
            .map(|_| t.train_step().unwrap().0.total_loss)
            .collect();
        (losses, common::weights(&t))
    });
    let ckpt = std::env::temp_dir().join(format!(
        "pretext-threads-{}.safetensors",
        std::process::id()
    ));
    let mut losses = common::pool(2).install(|| {
        let mut t = Trainer::new(&two, &data).unwrap();
        let l: Vec<f64> = (0..3)
            .map(|_| t.train_step().unwrap().0.total_loss)
            .collect();
        t.save_checkpoint(&ckpt).unwrap();
        l
    });
    let resumed = common::pool(1).install(|| {
        let mut t = Trainer::new(&one, &data).unwrap();
        t.load_checkpoint(&ckpt).unwrap();
        losses.extend((0..3).map(|_| t.train_step().unwrap().0.total_loss));
        common::weights(&t)
    });
    std::fs::remove_file(&ckpt).ok();
    assert_eq!(straight.0, losses, "losses depend on the thread count");
    assert!(
        straight.1 == resumed,
        "final weights depend on the thread count"
    );

    let text = |c: &Experiment| train::settings::resolved_text(c);
    assert_eq!(
        train::settings::settings_difference(&text(&two), &text(&one)),
        None
    );
    let mut other = wide(1);
    other.optimizer.lr *= 2.0;
    let (line, was, now) =
        train::settings::settings_difference(&text(&two), &text(&other)).expect("lr differs");
    assert!(
        was.starts_with("lr = ") && now.starts_with("lr = ") && line > 1,
        "{line}: {was} / {now}"
    );
}

#[test]
fn resume_refuses_a_checkpoint_of_other_settings() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    let mut t = Trainer::new(&cfg, &data).unwrap();
    t.train_step().unwrap();
    let dir = std::env::temp_dir().join(format!("pretext-mismatch-{}", std::process::id()));
    let ckpt = dir.join("c.safetensors");
    t.save_checkpoint(&ckpt).unwrap();
    let mut other = cfg.clone();
    other.optimizer.lr *= 2.0;
    let mut t2 = Trainer::new(&other, &data).unwrap();
    let e = t2.load_checkpoint(&ckpt).unwrap_err().to_string();
    assert!(
        e.contains("c.safetensors") && e.contains("other settings"),
        "{e}"
    );
    // One flipped byte in the tensor data is caught by the checksum.
    let good = std::fs::read(&ckpt).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x40;
    std::fs::write(&ckpt, &bad).unwrap();
    let mut t4 = Trainer::new(&cfg, &data).unwrap();
    let e = t4.load_checkpoint(&ckpt).unwrap_err().to_string();
    assert!(
        e.contains("c.safetensors") && e.contains("checksum") && e.contains("tensor `"),
        "{e}"
    );
    std::fs::write(&ckpt, &good).unwrap();
    Trainer::new(&cfg, &data)
        .unwrap()
        .load_checkpoint(&ckpt)
        .unwrap();
    // A truncated file is refused and names the file.
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() - 100]).unwrap();
    let mut t3 = Trainer::new(&cfg, &data).unwrap();
    let e = t3.load_checkpoint(&ckpt).unwrap_err().to_string();
    assert!(e.contains("c.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_nan_weight_stops_training_with_the_step_and_objective() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    let mut t = Trainer::new(&cfg, &data).unwrap();
    t.train_step().unwrap();
    t.bundle.visit_mut("", &mut |name, mut p| {
        if name == "encoder.layers.0.ffn.up.weight" {
            let mut v = p.to_vec();
            v[3] = f32::NAN;
            p.copy_from(&v);
        }
    });
    match t.train_step() {
        Err(e @ TrainError::NonFiniteLoss { step: 2, .. }) => {
            assert!(e.to_string().contains("step 2") && e.to_string().contains("mlm"))
        }
        other => panic!(
            "expected a non-finite loss error, got {:?}",
            other.map(|m| m.0)
        ),
    }
}

#[test]
fn a_divergence_rolls_back_to_the_checkpoint_with_a_lower_learning_rate() {
    let cfg = experiment("on_divergence = \"rollback\"\nrollback_lr_factor = 0.25");
    let data = prepared(&cfg);
    let dir = common::scratch("rollback");
    let ckpt = dir.join("latest.safetensors");
    let mut t = Trainer::new(&cfg, &data).unwrap();
    for _ in 0..4 {
        t.train_step().unwrap();
    }
    t.save_checkpoint(&ckpt).unwrap();
    let saved = common::weights(&t);
    let lr_before = t.learning_rate(5);
    t.train_step().unwrap();
    t.bundle.visit_mut("", &mut |name, mut p| {
        if name == "encoder.layers.0.attn.q.weight" {
            let mut v = p.to_vec();
            v[0] = f32::INFINITY;
            p.copy_from(&v);
        }
    });
    assert!(t.train_step().is_err());
    t.roll_back(&ckpt).unwrap();
    assert_eq!((t.step, t.rollbacks), (4, 1));
    assert_eq!(
        common::weights(&t),
        saved,
        "the weights are the checkpoint's again"
    );
    assert!((t.learning_rate(5) - 0.25 * lr_before).abs() < 1e-15);
    t.train_step().unwrap();
    assert!(
        t.state().lr_scale == 0.25,
        "the scale is saved with the next checkpoint"
    );

    // Through `run`: a learning rate of 1e30 blows up at once; one roll-back to the step-0
    // checkpoint with the rate ×1e-33 (1e-3) lets the run finish, and the logs say so.
    let mut cfg = experiment("on_divergence = \"rollback\"\nrollback_lr_factor = 1e-33");
    cfg.optimizer.lr = 1e30;
    cfg.optimizer.warmup_steps = 0;
    let run_dir = dir.join("run");
    let s = train::run(&cfg, &data, &run_dir, &train::Options::default()).unwrap();
    assert_eq!(s.steps, cfg.training.steps);
    assert!(s.last_train.total_loss.is_finite());
    let lrs: Vec<f64> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64())
        .collect();
    assert!(
        !lrs.is_empty() && lrs.iter().all(|&lr| lr < 1e-2),
        "only the lowered rate is logged: {lrs:?}"
    );
    // With roll-backs exhausted the run stops and says why.
    let mut cfg = experiment("on_divergence = \"rollback\"\nmax_rollbacks = 2");
    cfg.optimizer.lr = 1e30;
    cfg.optimizer.warmup_steps = 0;
    let err = train::run(&cfg, &data, &dir.join("run2"), &train::Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("after 2 roll-back(s)")
            && err.starts_with("step 2: the loss of objective `mlm` is NaN"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn downstream_entries_and_cluster_resources_do_not_invalidate_checkpoints() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    let dir = common::scratch("extra");
    let ckpt = dir.join("latest.safetensors");
    let mut t = Trainer::new(&cfg, &data).unwrap();
    t.train_step().unwrap();
    t.save_checkpoint(&ckpt).unwrap();
    let mut more = cfg.clone();
    more.finetune = vec![pretext::config::FinetuneSpec {
        task: "sst2".into(),
        data: "glue/SST-2".into(),
        ..Default::default()
    }];
    more.slurm = Some(Default::default());
    Trainer::new(&more, &data)
        .unwrap()
        .load_checkpoint(&ckpt)
        .unwrap();
    // A setting that changes training still does.
    let mut other = cfg.clone();
    other.optimizer.lr *= 2.0;
    assert!(Trainer::new(&other, &data)
        .unwrap()
        .load_checkpoint(&ckpt)
        .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

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
        let cfg = experiment(&format!("{heads}\n[model.powernorm]\nwarmup = 2"));
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
    let text = train::settings::resolved_text(&experiment(""));
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
}

/// A shorter version of `pretext run experiments/quickstart.toml`: the MLM loss falls clearly.
#[test]
fn quickstart_short_run_learns() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml");
    let mut cfg = LoadedExperiment::load(&path).unwrap().runs.remove(0).config;
    cfg.training.steps = 150;
    cfg.training.eval_every = 75;
    let data = prepared(&cfg);
    let dir = std::env::temp_dir().join(format!("pretext-quick-{}", std::process::id()));
    let s = train::run(&cfg, &data, &dir, &train::Options::default()).unwrap();
    let mlm = |m: &train::Metrics| m.per_objective.iter().find(|(n, ..)| n == "mlm").unwrap().1;
    let (first, last) = (mlm(&s.first), mlm(&s.last_train));
    assert!(last < first - 0.5, "MLM loss {first} → {last}");
    let eval = s.last_eval.expect("held-out evaluation ran");
    assert!(mlm(&eval) < first - 0.5, "held-out MLM loss {}", mlm(&eval));
    // The run directory has what DESIGN.md promises.
    assert!(dir.join("config.resolved.toml").exists());
    assert!(dir.join("checkpoints/latest.safetensors").exists());
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let train_rows = lines
        .lines()
        .filter(|l| l.contains(r#""split":"train""#))
        .count() as u64;
    let every = cfg.training.log_every;
    assert_eq!(train_rows, 150 / every + u64::from(150 % every != 0));
    assert!(std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("events.out.tfevents")));
    std::fs::remove_dir_all(&dir).ok();
}

/// A crash between checkpoints: the steps after the last checkpoint were logged, then lost.
/// After resume, metrics.jsonl holds every step once, with the losses of an uninterrupted run.
#[test]
fn logs_after_a_crash_and_resume_equal_an_uninterrupted_run() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    let root = std::env::temp_dir().join(format!("pretext-crash-{}", std::process::id()));
    let (straight, crashed) = (root.join("straight"), root.join("crashed"));
    train::run(&cfg, &data, &straight, &train::Options::default()).unwrap();

    let opts = |stop_at, resume| train::Options {
        resume,
        progress: false,
        stop_at,
        init: None,
    };
    train::run(&cfg, &data, &crashed, &opts(Some(10), false)).unwrap();
    let ckpt = crashed.join("checkpoints/latest.safetensors");
    let at_10 = std::fs::read(&ckpt).unwrap();
    train::run(&cfg, &data, &crashed, &opts(Some(15), true)).unwrap();
    std::fs::write(&ckpt, at_10).unwrap(); // the step-15 checkpoint never made it to disk
    let s = train::run(&cfg, &data, &crashed, &opts(None, true)).unwrap();
    assert_eq!(s.resumed_from, Some(10));

    let rows = |dir: &Path| -> Vec<(u64, String, Option<f64>)> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["step"].as_u64().unwrap(),
                    v["split"].as_str().unwrap().to_string(),
                    v["loss"].as_f64(),
                )
            })
            .collect()
    };
    assert_eq!(rows(&straight), rows(&crashed));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_second_process_on_one_run_directory_is_refused() {
    use pretext::rundir::RunLock;
    let dir = common::scratch("lock");
    // A live process (pid 1 always exists on Linux) holds the lock.
    std::fs::write(dir.join(".lock"), "1").unwrap();
    let e = RunLock::acquire(&dir).unwrap_err().to_string();
    assert!(e.contains("pid 1") && e.contains("pretext-lock"), "{e}");
    // A stale lock of a dead process is taken over, and released on drop.
    std::fs::write(dir.join(".lock"), "4000000000").unwrap();
    let lock = RunLock::acquire(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(".lock")).unwrap(),
        std::process::id().to_string()
    );
    drop(lock);
    assert!(!dir.join(".lock").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unusable_run_directory_is_an_error_before_training() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    // A file where the run directory should be: creating it fails, whoever the user is.
    let file = std::env::temp_dir().join(format!("pretext-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let e = train::run(&cfg, &data, &file.join("run"), &train::Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("pretext-not-a-dir"), "{e}");
    std::fs::remove_file(&file).ok();
}

/// `Trainer::layer_gradient_norms` (pretext gradnorms) names every encoder layer, leaves the
/// weights as they were, and its groups add up to the whole gradient: the train step's
/// (unclipped) gradient norm of the same batch.
#[test]
fn layer_gradient_norms_cover_the_gradient_and_change_nothing() {
    let cfg = experiment("");
    let data = prepared(&cfg);
    let mut a = Trainer::new(&cfg, &data).unwrap();
    let before = common::weights(&a);
    let norms = a.layer_gradient_norms(1).unwrap();
    assert_eq!(common::weights(&a), before, "no parameter may change");
    let names: Vec<&str> = norms.iter().map(|(n, _)| n.as_str()).collect();
    for i in 0..cfg.model.layers {
        assert!(
            names.contains(&format!("encoder.layers.{i}").as_str()),
            "{names:?}"
        );
    }
    assert!(
        names.contains(&"embeddings") && names.contains(&"heads"),
        "{names:?}"
    );
    // A fresh trainer draws the same batch (and dropout) for its first step.
    let mut b = Trainer::new(&cfg, &data).unwrap();
    let (_, global, _) = b.train_step().unwrap();
    let total = norms.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
    assert!(
        (total - global).abs() <= 1e-4 * global,
        "{total} vs {global}"
    );
}

/// The parameter count `pretext validate` prints (config::memory::parameters, counted as HF
/// counts `BertForPreTraining`) is the count of the model pretext builds with MLM + NSP.
#[test]
fn the_printed_parameter_count_is_the_built_models() {
    for tie in [true, false] {
        let mut cfg =
            experiment("[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"nsp\"\n");
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
        let mut cfg = experiment(o);
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
    let tied = experiment(objectives);
    let mut untied = tied.clone();
    untied.model.tie_word_embeddings = false;
    assert!(
        pretext::train::settings::resolved_text(&untied).contains("tie_word_embeddings = false")
    );
    assert!(!pretext::train::settings::resolved_text(&tied).contains("tie_word_embeddings"));
    let data = prepared(&tied);
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
