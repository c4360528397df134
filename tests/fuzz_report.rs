//! `pretext report` as a fuzz target (issue 8's rule for every reader, beside `tests/fuzz.rs`):
//! run folders whose metrics.jsonl rows hold any steps (repeated, out of order, huge), any
//! splits, any of the scalars the charts draw at any finite value (±1e308 and subnormals
//! included), and any `summary.json`, are reported or refused naming a file — never a panic
//! in the readers, the statistics or the charts (plotters' axis ranges are where extreme
//! values would break). Some runs carry a fine-tuning run, and every image a written report
//! links must exist (a `.` in a variant name once put every downstream chart in one file).

mod common;

use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -10.0..10.0f64,
        1 => Just(0.0),
        1 => Just(1e308),
        1 => Just(-1e308),
        1 => Just(5e-324),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
    ]
}

/// One metrics.jsonl line: a row as the loop writes them, or now and then not one.
fn line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "loss",
        "mlm/loss",
        "mlm/accuracy",
        "sop/loss",
        "lr",
        "grad_norm",
        "tokens_per_second",
        "elapsed_seconds",
    ]);
    let row = (
        prop_oneof![4 => 0u64..60, 1 => any::<u64>()],
        prop::sample::select(vec!["train", "eval", "x"]),
        prop::collection::vec((keys, value()), 0..5),
    )
        .prop_map(|(step, split, values)| {
            let mut v = serde_json::json!({"step": step, "split": split});
            for (k, x) in values {
                v[k] = serde_json::json!(x);
            }
            v.to_string()
        });
    prop_oneof![
        100 => row,
        1 => Just("{\"step\": -1, \"split\": \"train\"}".to_string()),
        1 => Just("not json".to_string()),
    ]
}

/// A variant of a grid, so that groups, seeds and the numeric sweep axis are all reached.
fn variant() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["post-ln", "pre-ln"]),
        prop::sample::select(vec!["0.001", "0.01", "1e308"]),
        1u32..3,
    )
        .prop_map(|(n, lr, s)| format!("norm={n},lr={lr},seed={s}"))
}

fn summary() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("{}".to_string()),
        Just("not json".to_string()),
        value().prop_map(|x| format!("{{\"final\": {{\"eval\": {{\"mlm/loss\": {x}}}}}}}")),
    ])
}

/// A folder of this process's own; each case empties it first.
fn folder() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| common::scratch("fuzz-report"))
}

/// A run folder; with `finetuned`, also an STS-B run under it scored `finetuned` on dev.
fn write_run(
    runs: &Path,
    variant: &str,
    lines: &[String],
    summary: &Option<String>,
    finetuned: Option<f64>,
) {
    let d = runs.join(variant);
    std::fs::create_dir_all(&d).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("metrics.jsonl"), text).unwrap();
    if let Some(s) = summary {
        std::fs::write(d.join("summary.json"), s).unwrap();
    }
    if let Some(x) = finetuned {
        let f = d.join("finetune/stsb/init=pretrained,seed=1");
        std::fs::create_dir_all(&f).unwrap();
        let row = serde_json::json!({"step": 1, "split": "eval", "spearman": x, "epoch": 1});
        std::fs::write(f.join("metrics.jsonl"), format!("{row}\n")).unwrap();
        std::fs::write(f.join("summary.json"), r#"{"metric": "spearman"}"#).unwrap();
    }
}

proptest! {
    // Each case draws a whole report (PNG and SVG charts): a tenth of the other targets' count.
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases() / 10, ..ProptestConfig::default() })]

    #[test]
    fn any_metrics_are_reported_or_refused_by_name(
        runs in prop::collection::vec(
            (variant(), prop::collection::vec(line(), 0..12), summary(), prop::option::of(value())),
            1..5,
        ),
    ) {
        let root = folder();
        let _ = std::fs::remove_dir_all(root);
        let dir = root.join("runs/exp");
        for (v, lines, summary, finetuned) in &runs {
            write_run(&dir, v, lines, summary, *finetuned);
        }
        let out = root.join("reports/exp");
        match pretext::report::write(&dir, &out, "pretext run exp.toml") {
            Ok(w) => {
                let md = std::fs::read_to_string(&w.markdown).unwrap();
                let missing: Vec<String> = common::linked_images(&md)
                    .into_iter()
                    .filter(|f| !out.join(f).is_file())
                    .collect();
                prop_assert!(missing.is_empty(), "linked and missing: {missing:?}");
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains("metrics.jsonl") || e.contains(root.to_str().unwrap()), "{e}");
            }
        }
    }
}
