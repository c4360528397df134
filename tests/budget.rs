//! Issue 20: `training.budget`, a run bounded by training time. The schedule follows the
//! fraction of the budget spent, the time survives a checkpoint, and the run ends when the
//! budget is spent, recorded with the steps it reached.

mod common;

use pretext::config::budget::NO_STEP_LIMIT;
use pretext::config::{Experiment, LoadedExperiment, OptimizerConfig, Schedule};
use pretext::data::{self, Prepared};
use pretext::train::optimizer::{budget_learning_rate, learning_rate};
use pretext::train::{self, Trainer};
use std::path::Path;

fn experiment(training: &str) -> Result<Experiment, String> {
    let text = format!(
        r#"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 300
[model]
layers = 1
hidden = 16
heads = 2
ffn = 32
max_positions = 32
[optimizer]
lr = 1e-3
warmup_steps = 2
schedule = "linear"
[training]
batch_size = 4
seq_len = 32
eval_every = 0
eval_batches = 1
log_every = 1
checkpoint_every = 0
{training}
"#
    );
    LoadedExperiment::from_str(&text, Path::new("budget.toml"))
        .map(|mut e| e.runs.remove(0).config)
        .map_err(|e| e.to_string())
}

fn prepared(cfg: &Experiment) -> Prepared {
    let dir = common::scratch("budget-tok");
    data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), Some(&dir)).unwrap()
}

#[test]
fn a_budget_without_steps_has_no_step_limit_and_bad_budgets_name_key_and_line() {
    let cfg = experiment("budget = \"10min\"").unwrap();
    assert_eq!(cfg.training.steps, NO_STEP_LIMIT);
    assert_eq!(cfg.training.budget.as_ref().unwrap().seconds, 600.0);
    let capped = experiment("budget = \"10min\"\nsteps = 7").unwrap();
    assert_eq!(capped.training.steps, 7);
    // A step-bounded run's resolved settings do not mention budgets: its checkpoints and
    // finished runs from before the key existed still match.
    let plain = experiment("steps = 7").unwrap();
    assert!(!pretext::train::settings::resolved_text(&plain).contains("budget ="));
    assert!(pretext::train::settings::resolved_text(&cfg).contains("budget = \"10min\""));

    let e = experiment("budget = \"ten minutes\"").unwrap_err();
    assert!(
        e.contains("budget.toml:23") && e.contains("training.budget") && e.contains("\"45min\""),
        "{e}"
    );
    let e = experiment("budget = 600").unwrap_err();
    assert!(e.contains("training.budget"), "{e}");
}

#[test]
fn the_schedule_runs_over_the_fraction_of_the_budget_spent() {
    let cfg = OptimizerConfig {
        lr: 1.0,
        warmup_steps: 10,
        schedule: Schedule::Linear,
        ..Default::default()
    };
    // Warm-up is the step schedule's, whatever the time.
    for step in 1..=10 {
        assert_eq!(
            budget_learning_rate(&cfg, step, 0.9),
            learning_rate(&cfg, step, 100)
        );
    }
    assert!((budget_learning_rate(&cfg, 11, 0.25) - 0.75).abs() < 1e-12);
    assert!((budget_learning_rate(&cfg, 500, 1.0)).abs() < 1e-12);
    let cosine = OptimizerConfig {
        schedule: Schedule::Cosine,
        ..cfg
    };
    assert!((budget_learning_rate(&cosine, 11, 0.5) - 0.5).abs() < 1e-12);

    // In a trainer: the rate follows the time spent, not the step.
    let exp = experiment("budget = \"100s\"").unwrap();
    let data = prepared(&exp);
    let mut t = Trainer::new(&exp, &data).unwrap();
    t.train_seconds = 25.0;
    assert!((t.learning_rate(50) - 0.75e-3).abs() < 1e-12);
    t.train_seconds = 100.0;
    assert!(t.finished());
    assert_eq!(t.learning_rate(50), 0.0);
}

#[test]
fn time_spent_survives_a_checkpoint_and_the_run_ends_when_the_budget_is_spent() {
    let cfg = experiment("budget = \"2s\"").unwrap();
    let data = prepared(&cfg);
    let root = std::env::temp_dir().join(format!("pretext-budget-{}", std::process::id()));
    let dir = root.join("run");
    let opts = |stop_at, resume| train::Options {
        resume,
        progress: false,
        stop_at,
        init: None,
    };
    // Three steps, checkpointed: not finished, and the time they took is in the checkpoint.
    let s = train::run(&cfg, &data, &dir, &opts(Some(3), false)).unwrap();
    assert!(!s.finished && s.steps == 3 && s.train_seconds > 0.0);
    let mut t = Trainer::new(&cfg, &data).unwrap();
    t.load_checkpoint(&dir.join("checkpoints/latest.safetensors"))
        .unwrap();
    assert_eq!(t.train_seconds, s.train_seconds);

    // Resumed, it trains until two seconds of steps are spent in all, then stops by itself.
    let s = train::run(&cfg, &data, &dir, &opts(None, true)).unwrap();
    assert_eq!(s.resumed_from, Some(3));
    assert!(s.finished && s.train_seconds >= 2.0 && s.steps > 3, "{s:?}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train: Vec<&serde_json::Value> = rows.iter().filter(|r| r["split"] == "train").collect();
    assert_eq!(train.len() as u64, s.steps, "one row per step, none twice");
    let seconds: Vec<f64> = train
        .iter()
        .map(|r| r["train_seconds"].as_f64().unwrap())
        .collect();
    assert!(seconds.windows(2).all(|w| w[0] < w[1]), "{seconds:?}");
    // The last step ran at a rate near the end of the linear decay, far below the peak.
    let last_lr = train.last().unwrap()["lr"].as_f64().unwrap();
    let peak = train[1]["lr"].as_f64().unwrap();
    assert_eq!(peak, 1e-3);
    assert!(last_lr < 0.25 * peak, "last lr {last_lr}");
    // The final evaluation reports the time it was taken at.
    let eval = rows.iter().rev().find(|r| r["split"] == "eval").unwrap();
    assert_eq!(eval["step"].as_u64(), Some(s.steps));
    assert_eq!(eval["train_seconds"].as_f64(), Some(s.train_seconds));

    // The report charts held-out quality against the training time, with the steps reached.
    let out = root.join("report");
    let w = pretext::report::write(&root, &out, "pretext run budget.toml").unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("## Held-out metrics against training time"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| run | 1 | {} | {:.0} |",
            s.steps, s.train_seconds
        )),
        "{md}"
    );
    let svg = std::fs::read_to_string(out.join("time_mlm_accuracy.svg")).unwrap();
    assert!(svg.contains("training time (s)"));
    // The clock is the x axis there, never a metric of its own.
    assert!(!out.join("eval_train_seconds.svg").exists());
    assert!(!out.join("time_train_seconds.svg").exists());
    assert!(!md.contains("| train_seconds"), "{md}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_batch_ramp_grows_the_batch_over_the_run_and_resumes_bit_identically() {
    let cfg = experiment("steps = 8\n[training.batch_ramp]\nstart = 1\nuntil = 0.5").unwrap();
    let data = prepared(&cfg);
    let mut straight = Trainer::new(&cfg, &data).unwrap();
    let mut sizes = vec![];
    let mut losses = vec![];
    for _ in 0..8 {
        sizes.push(straight.batch_size());
        let (m, _, tokens) = straight.train_step().unwrap();
        assert!(tokens <= sizes.last().unwrap() * 32, "{tokens} tokens");
        losses.push(m.total_loss);
    }
    // 1 sequence at the start, the full 4 from half-way (step 4 of 8) on.
    assert_eq!(sizes, [1, 2, 3, 3, 4, 4, 4, 4]);

    assert_eq!(losses, resumed_losses(&cfg, &data, 3, 8));

    // A ramp beyond the batch names the key, and an unknown option is refused.
    let e = experiment("[training.batch_ramp]\nstart = 9\nuntil = 0.5").unwrap_err();
    assert!(
        e.contains("training.batch_ramp") && e.contains("start"),
        "{e}"
    );
    let e = experiment("[training.batch_ramp]\nstart = 2\nuntil = 0.5\nlength = 3").unwrap_err();
    assert!(e.contains("length"), "{e}");
}

#[test]
fn a_short_phase_serves_short_sequences_first_and_resumes_bit_identically_in_either_phase() {
    let cfg = experiment("steps = 8\n[training.short_phase]\nseq_len = 16\nuntil = 0.5").unwrap();
    let data = prepared(&cfg);
    let mut straight = Trainer::new(&cfg, &data).unwrap();
    let mut tokens = vec![];
    let mut losses = vec![];
    for _ in 0..8 {
        let (m, _, t) = straight.train_step().unwrap();
        tokens.push(t);
        losses.push(m.total_loss);
    }
    // Four batches of 4 sequences of at most 16 tokens, then of up to 32 (the embedded text
    // fills most sequences to the brim).
    assert!(tokens[..4].iter().all(|&t| t <= 4 * 16), "{tokens:?}");
    assert!(tokens[4..].iter().all(|&t| t > 4 * 16), "{tokens:?}");
    // The held-out set is the run's, at training.seq_len, whatever the phase.
    assert!(straight.evaluate().unwrap().is_some());

    for split in [2, 6] {
        assert_eq!(
            losses,
            resumed_losses(&cfg, &data, split, 8),
            "split {split}"
        );
    }

    let e = experiment("[training.short_phase]\nseq_len = 32\nuntil = 0.5").unwrap_err();
    assert!(
        e.contains("training.short_phase") && e.contains("seq_len"),
        "{e}"
    );
}

/// The losses of `total` steps trained as `split` steps, a checkpoint, and a fresh trainer
/// resumed from it for the rest.
fn resumed_losses(cfg: &Experiment, data: &Prepared, split: u64, total: u64) -> Vec<f64> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pretext-resume-{}-{call}", std::process::id()));
    let ckpt = dir.join("ckpt.safetensors");
    let mut first = Trainer::new(cfg, data).unwrap();
    let mut losses: Vec<f64> = (0..split)
        .map(|_| first.train_step().unwrap().0.total_loss)
        .collect();
    first.save_checkpoint(&ckpt).unwrap();
    let mut second = Trainer::new(cfg, data).unwrap();
    second.load_checkpoint(&ckpt).unwrap();
    losses.extend((split..total).map(|_| second.train_step().unwrap().0.total_loss));
    std::fs::remove_dir_all(&dir).ok();
    losses
}
