//! Issue 16, item 3: bf16 mixed precision in whole runs. A bf16 run's exact resume and thread
//! independence, its checkpoint's precision, its losses beside f32's; and the fallback on a
//! CPU without the instructions (forced by `PRETEXT_CPU_BF16=0`), which must be f32 bit for
//! bit and say so in one line. The kernel itself: `tests/bf16.rs`.

mod common;

use pretext::config::Precision;
use pretext::model::fused::gemm_bf16;
use pretext::train::Trainer;

fn run_config(threads: usize) -> pretext::config::Experiment {
    common::experiment(
        &format!(
            r#"[model]
layers = 2
hidden = 128
heads = 4
ffn = 512
max_positions = 64
[[objectives]]
name = "mlm"
[[objectives]]
name = "sop"
[training]
batch_size = 16
seq_len = 64
grad_accum = 2
threads = {threads}
precision = "bf16"
"#
        ),
        "bf16.toml",
    )
}

fn corpus() -> pretext::data::Prepared {
    let docs: Vec<Vec<Vec<u32>>> = (0..60u32)
        .map(|d| {
            (0..8u32)
                .map(|s| {
                    (0..24u32)
                        .map(|t| 5 + (d * 31 + s * 7 + t * t) % 300)
                        .collect()
                })
                .collect()
        })
        .collect();
    common::prepared(305, docs, "bf16")
}

/// A bf16 run trained 3 steps on 2 threads, saved and continued 3 on 1 thread, ends with the
/// bits of one trained 6 steps on 1 thread; its checkpoint says bf16; and its losses stay
/// within 2 % of the same run in f32 (where the CPU has no bf16, they are f32's exactly).
#[test]
fn a_bf16_run_resumes_bit_identically_on_any_thread_count() {
    let data = corpus();
    let (one, two) = (run_config(1), run_config(2));
    let run = common::resume_across_threads(&one, &two, &data);
    run.assert_bit_identical("bf16");
    assert_eq!(run.state.precision, run.precision.name());

    let mut f32_cfg = run_config(1);
    f32_cfg.training.precision = Precision::Fp32;
    let f32_losses = common::pool(1).install(|| {
        let mut t = Trainer::new(&f32_cfg, &data).unwrap();
        (0..6)
            .map(|_| t.train_step().unwrap().0.total_loss)
            .collect::<Vec<f64>>()
    });
    if run.precision == Precision::Bf16 {
        assert_eq!(run.state.precision, "bf16");
        assert_ne!(run.straight.0, f32_losses, "bf16 ran as f32");
        for (b, f) in run.straight.0.iter().zip(&f32_losses) {
            assert!((b - f).abs() <= 0.02 * f.abs(), "bf16 {b} vs f32 {f}");
        }
    } else {
        assert_eq!(run.straight.0, f32_losses, "the fallback is not f32");
    }
}

/// `PRETEXT_CPU_BF16=0` makes this CPU one without the instructions: a bf16 benchmark then
/// says so in one line and computes f32's losses bit for bit.
#[test]
fn without_the_instructions_bf16_falls_back_to_f32_and_says_so() {
    let bench = |precision: &str, forced_off: bool| {
        let mut c = common::pretext();
        c.args(["bench", "--shape", "small", "--batch", "2", "--warmup", "0"])
            .args([
                "--steps",
                "2",
                "--threads",
                "1",
                "--json",
                "--precision",
                precision,
            ]);
        if forced_off {
            c.env("PRETEXT_CPU_BF16", "0");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (f32_run, quiet) = bench("fp32", false);
    let (fallback, said) = bench("bf16", true);
    assert_eq!(fallback["precision"], "fp32");
    assert_eq!(fallback["losses"], f32_run["losses"]);
    assert!(
        said.contains("lacks AVX512-BF16") && said.lines().count() == 1,
        "{said}"
    );
    assert!(quiet.is_empty(), "{quiet}");
    if gemm_bf16::native() {
        let (native, said) = bench("bf16", false);
        assert_eq!(native["precision"], "bf16");
        assert_ne!(native["losses"], f32_run["losses"]);
        assert!(said.is_empty(), "{said}");
    }
}
