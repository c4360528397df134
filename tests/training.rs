//! Issue 4: the training loop — exact resume, divergence guard, logs, run directories, layer
//! gradient norms, and a short version of the README's quickstart. The optimiser's arithmetic
//! is in tests/optimizer.rs, the parameter counts in tests/parameter_count.rs.

mod common;

use pretext::config::{Experiment, LoadedExperiment};
use pretext::model::Params;
use pretext::train::{self, TrainError, Trainer};
use std::path::Path;

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
        let mut cfg = common::small_run(extra);
        if i == 1 {
            cfg.model.norm = pretext::config::NormKind::Powernorm;
        }
        if i == 2 {
            cfg.model.norm = pretext::config::NormKind::PreLn;
        }
        let data = common::tokenized(&cfg);
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
        let mut cfg =
            common::small_run("[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"sop\"");
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
    let data = common::tokenized(&one);
    let run = common::resume_across_threads(&one, &two, &data);
    run.assert_bit_identical("f32");

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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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
    let cfg = common::small_run("on_divergence = \"rollback\"\nrollback_lr_factor = 0.25");
    let data = common::tokenized(&cfg);
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
    let mut cfg = common::small_run("on_divergence = \"rollback\"\nrollback_lr_factor = 1e-33");
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
    let mut cfg = common::small_run("on_divergence = \"rollback\"\nmax_rollbacks = 2");
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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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

/// A shorter version of `pretext run experiments/quickstart.toml`: the MLM loss falls clearly.
#[test]
fn quickstart_short_run_learns() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml");
    let mut cfg = LoadedExperiment::load(&path).unwrap().runs.remove(0).config;
    cfg.training.steps = 150;
    cfg.training.eval_every = 75;
    let data = common::tokenized(&cfg);
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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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
    let cfg = common::small_run("");
    let data = common::tokenized(&cfg);
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
