//! The optimiser step on the device (what CUDA builds train with) against the host AdamW the
//! CPU trains with: same losses, gradient norms and weights up to summation order, with
//! clipping, accumulation, weight decay and both ε placements — and exact resume.

mod common;

use pretext::data::{self, Prepared};
use pretext::model::Params;
use pretext::train::Trainer;
use std::path::Path;

fn experiment(eps: &str) -> pretext::config::Experiment {
    common::experiment(
        &format!(
            r#"
[data]
corpus = ["embedded"]
[tokenizer]
vocab_size = 300
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 32
dropout = 0.1
[optimizer]
lr = 3e-3
warmup_steps = 3
clip = 0.5
weight_decay = 0.1
{eps}
[training]
steps = 12
batch_size = 8
seq_len = 32
grad_accum = 2
[[objectives]]
name = "mlm"
[[objectives]]
name = "sop"
"#
        ),
        "device-step.toml",
    )
}

fn prepared(cfg: &pretext::config::Experiment, tag: &str) -> Prepared {
    let dir = common::scratch(&format!("devstep-{tag}"));
    let p = data::prepare(&cfg.data, &cfg.tokenizer, Path::new("."), Some(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    p
}

fn weights(t: &Trainer) -> Vec<f32> {
    t.bundle
        .named_params()
        .into_iter()
        .flat_map(|(_, p)| p.to_vec())
        .collect()
}

#[test]
fn the_device_step_is_the_host_step() {
    let mut finals = Vec::new();
    for eps in [
        "eps = 1e-3\neps_placement = \"hf-legacy\"",
        "eps = 1e-3\neps_placement = \"torch\"",
    ] {
        let cfg = experiment(eps);
        let data = prepared(&cfg, "same");
        let mut host = Trainer::new(&cfg, &data).unwrap();
        let mut device = Trainer::new(&cfg, &data).unwrap();
        let mut clipped = 0;
        for step in 1..=12 {
            let (a, norm_a, tok_a) = host.train_step_on_host().unwrap();
            let (b, norm_b, tok_b) = device.train_step_on_device().unwrap();
            assert_eq!(tok_a, tok_b);
            let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(1e-9);
            assert!(
                rel(a.total_loss, b.total_loss) < 1e-5,
                "{eps}, step {step}: loss {} vs {}",
                a.total_loss,
                b.total_loss
            );
            assert!(
                rel(norm_a, norm_b) < 1e-4,
                "step {step}: norm {norm_a} vs {norm_b}"
            );
            clipped += usize::from(norm_a > 0.5);
        }
        assert!(
            clipped > 3,
            "clipping was exercised on {clipped} steps only"
        );
        let (wa, wb) = (weights(&host), weights(&device));
        let worst = wa
            .iter()
            .zip(&wb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{eps}: weights differ by {worst}");
        finals.push(wb);
    }
    // The two ε placements are different updates at this ε, so the conversion was tested.
    let moved = finals[0]
        .iter()
        .zip(&finals[1])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-4,
        "the ε placements agree ({moved}): the test lost its edge"
    );
}

#[test]
fn the_device_step_resumes_from_a_checkpoint() {
    let cfg = experiment("");
    let data = prepared(&cfg, "resume");
    let mut straight = Trainer::new(&cfg, &data).unwrap();
    let full: Vec<f64> = (0..10)
        .map(|_| straight.train_step_on_device().unwrap().0.total_loss)
        .collect();
    let dir = std::env::temp_dir().join(format!("pretext-devstep-ckpt-{}", std::process::id()));
    let ckpt = dir.join("ckpt.safetensors");
    let mut first = Trainer::new(&cfg, &data).unwrap();
    let mut halves: Vec<f64> = (0..5)
        .map(|_| first.train_step_on_device().unwrap().0.total_loss)
        .collect();
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    let mut second = Trainer::new(&cfg, &data).unwrap();
    second.load_checkpoint(&ckpt).unwrap();
    halves.extend((0..5).map(|_| second.train_step_on_device().unwrap().0.total_loss));
    std::fs::remove_dir_all(&dir).ok();
    if cfg!(feature = "cuda") {
        // CUDA's reductions do not fix their summation order (reports/gpu).
        for (a, b) in full.iter().zip(&halves) {
            assert!((a - b).abs() < 1e-5 * a.abs(), "{a} vs {b}");
        }
    } else {
        assert_eq!(full, halves, "losses after resume differ");
        assert!(
            weights(&straight) == weights(&second),
            "final weights differ"
        );
    }
}
