//! Issue 5 (part): reports read run directories back, group seeds, and draw every chart.

mod common;

use pretext::report::runs::{group_of, mean_curve, mean_std, smooth};
use std::path::Path;

fn fake_run(dir: &Path, variant: &str, offset: f64) {
    let d = dir.join(variant);
    std::fs::create_dir_all(&d).unwrap();
    let mut lines = String::new();
    for step in (10..=100).step_by(10) {
        let loss = 7.0 - step as f64 / 50.0 + offset;
        lines += &format!("{{\"step\":{step},\"split\":\"train\",\"loss\":{loss},\"mlm/loss\":{loss},\"lr\":0.001,\"grad_norm\":1.5}}\n");
        if step % 50 == 0 {
            lines += &format!("{{\"step\":{step},\"split\":\"eval\",\"loss\":{},\"mlm/loss\":{},\"mlm/accuracy\":0.1}}\n", loss + 0.1, loss + 0.1);
        }
    }
    std::fs::write(d.join("metrics.jsonl"), lines).unwrap();
    std::fs::write(d.join("summary.json"), "{}").unwrap();
    std::fs::write(d.join("config.resolved.toml"), "[model]\nlayers = 2\n").unwrap();
}

#[test]
fn report_groups_seeds_and_draws_png_and_svg() {
    let root = std::env::temp_dir().join(format!("pretext-report-{}", std::process::id()));
    let runs = root.join("runs/exp");
    for (v, o) in [
        ("norm=post-ln,seed=1", 0.0),
        ("norm=post-ln,seed=2", 0.2),
        ("norm=pre-ln,seed=1", -0.3),
        ("norm=pre-ln,seed=2", -0.1),
        ("norm=powernorm,seed=1", 0.4),
    ] {
        fake_run(&runs, v, o);
    }
    let out = root.join("reports/exp");
    let w = pretext::report::write(&runs, &out, "pretext run exp.toml").unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(md.contains("| norm=post-ln | 2 |"), "{md}");
    // post-ln final eval mlm/loss: seeds 5.1 and 5.3 → 5.2000 ± 0.1414.
    assert!(md.contains("5.2000 ± 0.1414"), "{md}");
    // One seed has no spread: its cell is the value alone, not "± 0.0000".
    let one = md
        .lines()
        .find(|l| l.starts_with("| norm=powernorm | 1 |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(one.contains("5.5000") && !one.contains('±'), "{one}");
    assert!(md.contains("pretext run exp.toml"));
    // Runs bounded by steps record no training time: no chart against it.
    assert!(!md.contains("against training time"), "{md}");
    for c in [
        "train_mlm_loss",
        "eval_mlm_accuracy",
        "train_lr",
        "train_grad_norm",
        "final_eval_mlm_loss",
    ] {
        let png = out.join(format!("{c}.png"));
        let svg = out.join(format!("{c}.svg"));
        assert!(
            std::fs::metadata(&png).unwrap().len() > 5_000,
            "{c}.png is too small to hold a chart"
        );
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        // The shared axis name is the legend title, the values its entries.
        assert!(
            svg_text.contains("norm:")
                && svg_text.contains(
                    "
pre-ln
"
                ),
            "{c}.svg has no legend entry"
        );
        assert!(md.contains(&format!("({c}.png)")));
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn empty_or_malformed_run_directories_are_named() {
    let root = common::scratch("report-bad");
    let e = pretext::report::write(&root, &root.join("out"), "x")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no run directories"), "{e}");
    std::fs::create_dir_all(root.join("v")).unwrap();
    std::fs::write(
        root.join("v/metrics.jsonl"),
        "{\"step\":1,\"split\":\"train\"}\nnot json\n",
    )
    .unwrap();
    let e = pretext::report::write(&root, &root.join("out"), "x")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("metrics.jsonl:2"), "{e}");
    // A last row cut short (no newline: a kill during its write) is left out, not refused;
    // the same text with its newline is a malformed row.
    let torn = "{\"step\":1,\"split\":\"train\",\"loss\":2.5}\n{\"step\":2,\"split\"";
    std::fs::write(root.join("v/metrics.jsonl"), torn).unwrap();
    pretext::report::write(&root, &root.join("out"), "x").unwrap();
    std::fs::write(root.join("v/metrics.jsonl"), format!("{torn}\n")).unwrap();
    let e = pretext::report::write(&root, &root.join("out"), "x")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("metrics.jsonl:2"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

/// Logged values at the ends of f64 (a hand-edited or corrupted log): the report is drawn.
/// plotters' tick search never returned on the width of −1e308..1e308, and a value far off
/// a chart overflowed its pixel arithmetic; `tests/fuzz_report.rs` found both.
#[test]
fn a_report_of_values_at_the_ends_of_f64_is_drawn() {
    let root = common::scratch("report-extreme");
    for (variant, a, b) in [
        ("lr=0.001,seed=1", -1e308, 1e308),
        ("lr=0.001,seed=2", 1e308, 1.5e308),
        ("lr=1e308,seed=1", 1e300, 1e300),
    ] {
        let d = root.join("runs").join(variant);
        std::fs::create_dir_all(&d).unwrap();
        let rows = format!(
            "{{\"step\":1,\"split\":\"train\",\"loss\":{a}}}\n\
             {{\"step\":2,\"split\":\"eval\",\"loss\":{b},\"mlm/loss\":{b}}}\n"
        );
        std::fs::write(d.join("metrics.jsonl"), rows).unwrap();
        std::fs::write(d.join("summary.json"), "{}").unwrap();
    }
    // On a thread of its own, so that a return of the hang fails here instead of holding up
    // the whole test run until CI's own limit.
    let (done, written) = std::sync::mpsc::channel();
    let runs = root.join("runs");
    let out = root.join("out");
    std::thread::spawn(move || done.send(pretext::report::write(&runs, &out, "x").unwrap()));
    let w = written
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("`pretext report` did not finish in 5 minutes: the tick search hangs again");
    assert!(w.markdown.is_file());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn grouping_and_statistics() {
    assert_eq!(group_of("objectives=mlm+sop,seed=3"), "objectives=mlm+sop");
    assert_eq!(group_of("seed=3"), "base");
    let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
    assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    assert_eq!(
        mean_curve(&[vec![(1, 1.0), (2, 2.0)], vec![(1, 3.0)]]),
        vec![(1, 2.0)]
    );
    assert_eq!(smooth(&[(1, 1.0), (2, 3.0)], 0.5), vec![(1, 1.0), (2, 2.0)]);
}

/// A downstream run with dev accuracy `acc` after each of two epochs (the last is `acc`).
fn fake_downstream(task_dir: &Path, variant: &str, acc: f64) {
    let d = task_dir.join(variant);
    std::fs::create_dir_all(&d).unwrap();
    let lines = format!(
        "{{\"step\":5,\"split\":\"train\",\"loss\":0.6}}\n{{\"step\":10,\"split\":\"eval\",\"accuracy\":{},\"epoch\":1}}\n{{\"step\":20,\"split\":\"eval\",\"accuracy\":{acc},\"epoch\":2}}\n",
        acc - 0.05
    );
    std::fs::write(d.join("metrics.jsonl"), lines).unwrap();
    std::fs::write(d.join("summary.json"), r#"{"metric": "accuracy"}"#).unwrap();
}

/// Pretraining variants whose names hold a dot (`lr=0.0001`), each with its own downstream
/// runs: each gets charts of its own, and every image the Markdown links exists. The
/// extension used to replace what followed the name's last dot, so the variants of one
/// learning rate drew over each other's charts and every link pointed at nothing.
#[test]
fn charts_of_variants_with_dots_in_their_names_are_their_own() {
    let root = common::scratch("report-dots");
    let runs = root.join("runs/exp");
    let variants = ["lr=0.00003,seed=1", "lr=0.0001,seed=1", "lr=0.0001,seed=2"];
    for (i, v) in variants.iter().enumerate() {
        fake_run(&runs, v, i as f64 * 0.1);
        let stsb = runs.join(v).join("finetune/stsb");
        fake_downstream(&stsb, "init=pretrained,seed=1", 0.5 + i as f64 * 0.1);
    }
    let out = root.join("reports/exp");
    let w = pretext::report::write(&runs, &out, "pretext run exp.toml").unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    let images = common::linked_images(&md);
    let downstream: Vec<&String> = images
        .iter()
        .filter(|f| f.starts_with("downstream_") && !f.ends_with("_curve.png"))
        .collect();
    assert_eq!(downstream.len(), variants.len(), "{images:?}");
    for f in &images {
        assert!(out.join(f).is_file(), "{f} is linked and missing");
        assert!(out.join(f.replace(".png", ".svg")).is_file(), "{f}: no SVG");
    }
    let pngs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("downstream_") && !name.contains("_curve") && name.ends_with(".png")
        })
        .count();
    assert_eq!(pngs, variants.len(), "one chart per pretraining variant");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn downstream_section_compares_against_the_seed_spread() {
    let root = std::env::temp_dir().join(format!("pretext-report-ds-{}", std::process::id()));
    let runs = root.join("runs/exp");
    fake_run(&runs, "base", 0.0);
    let sst = runs.join("base/finetune/sst2");
    for (v, a) in [
        ("init=pretrained,mode=finetune,seed=1", 0.80),
        ("init=pretrained,mode=finetune,seed=2", 0.82),
        ("init=scratch,mode=finetune,seed=1", 0.70),
        ("init=scratch,mode=finetune,seed=2", 0.72),
        ("init=pretrained,mode=probe,seed=1", 0.60),
        ("init=pretrained,mode=probe,seed=2", 0.70),
        ("init=scratch,mode=probe,seed=1", 0.62),
        ("init=scratch,mode=probe,seed=2", 0.64),
    ] {
        fake_downstream(&sst, v, a);
    }
    let out = root.join("reports/exp");
    let w = pretext::report::write(&runs, &out, "pretext run exp.toml").unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    // Fine-tune: 0.810 ± 0.014 vs 0.710 ± 0.014, +0.100 beyond a spread of 0.014.
    assert!(
        md.contains("| sst2 | finetune | accuracy | 0.810 ± 0.014 | 0.710 ± 0.014 | +0.100 | 0.014 | higher, beyond seed spread |"),
        "{md}"
    );
    // Probe: 0.650 ± 0.071 vs 0.630 ± 0.014: +0.020 is inside the spread.
    assert!(md.contains("| sst2 | probe | accuracy | 0.650 ± 0.071 | 0.630 ± 0.014 | +0.020 | 0.071 | within seed spread |"), "{md}");
    assert!(
        md.contains("| sst2 | pretrained | accuracy | 0.810 ± 0.014 | 0.650 ± 0.071 |"),
        "{md}"
    );
    for c in ["downstream_sst2", "downstream_sst2_curve"] {
        assert!(
            std::fs::metadata(out.join(format!("{c}.png")))
                .unwrap()
                .len()
                > 5_000
        );
        assert!(out.join(format!("{c}.svg")).exists());
    }
    std::fs::remove_dir_all(&root).ok();
}

/// A learning-rate sweep gets its chart: final held-out loss against the numeric axis, one
/// line per setting of the other axes, with the runs that did not finish (diverged) counted.
#[test]
fn a_numeric_axis_gets_a_sweep_chart_with_divergences_marked() {
    let root = std::env::temp_dir().join(format!("pretext-sweep-{}", std::process::id()));
    let runs = root.join("runs/exp");
    for (norm, base) in [("post-ln", 0.0), ("pre-ln", -0.5)] {
        for (i, lr) in ["0.001", "0.003", "0.01"].iter().enumerate() {
            for seed in [1, 2] {
                let v = format!("norm={norm},lr={lr},seed={seed}");
                fake_run(&runs, &v, base + i as f64 * 0.25 + seed as f64 * 0.1);
            }
        }
    }
    // One post-LN run at the highest rate diverged: no summary, logs cut short.
    let diverged = runs.join("norm=post-ln,lr=0.01,seed=2");
    std::fs::remove_file(diverged.join("summary.json")).unwrap();
    let out = root.join("reports/exp");
    let w = pretext::report::write(&runs, &out, "pretext run exp.toml").unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(md.contains("## Final held-out mlm/loss against lr"), "{md}");
    // post-LN at lr 0.001: final eval mlm/loss 5.1 + {0.1, 0.2} → 5.250 ± 0.071.
    let row = md
        .lines()
        .find(|l| l.starts_with("| norm=post-ln | "))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains("5.250 ± 0.071"), "{row}");
    assert!(row.ends_with("✗ 1 |"), "{row}");
    assert!(
        std::fs::metadata(out.join("final_vs_lr.png"))
            .unwrap()
            .len()
            > 5_000
    );
    assert!(std::fs::read_to_string(out.join("final_vs_lr.svg"))
        .unwrap()
        .contains("log scale"));
    let _ = std::fs::remove_dir_all(&root);
}

/// A report folder remembers the runs it was drawn from (`.pretext-report`): the report pretext
/// writes by itself (end of `pretext run`, `pretext report` without `--out`) is not drawn over
/// one of other runs — the committed report of an experiment rerun with another `--runs-dir`
/// stays byte for byte — while the same runs redraw it and `--out` writes anywhere.
#[test]
fn a_report_of_other_runs_does_not_replace_one_by_itself() {
    let root = std::env::temp_dir().join(format!("pretext-report-source-{}", std::process::id()));
    let (first, other) = (root.join("runs/exp"), root.join("runs/r2/exp"));
    fake_run(&first, "seed=1", 0.0);
    fake_run(&other, "seed=1", 0.5);
    let out = root.join("reports/exp");
    pretext::report::write(&first, &out, "pretext run exp.toml").unwrap();
    let before = std::fs::read(out.join("README.md")).unwrap();
    assert_eq!(
        pretext::report::drawn_from(&out).as_deref(),
        Some(first.to_str().unwrap())
    );

    assert!(!pretext::report::folder::write_default(&other, &out).unwrap());
    assert_eq!(std::fs::read(out.join("README.md")).unwrap(), before);
    assert!(pretext::report::folder::write_default(&first, &out).unwrap());

    // Runs that are gone are told apart by their path as written.
    assert!(pretext::report::same_runs(
        "runs/speedrun",
        Path::new("./runs/speedrun")
    ));
    assert!(!pretext::report::same_runs(
        "runs/speedrun",
        Path::new("runs/r4/speedrun")
    ));

    let elsewhere = root.join("reports/exp-r2");
    pretext::report::folder::write(&other, &elsewhere).unwrap();
    assert!(pretext::report::same_runs(
        &pretext::report::drawn_from(&elsewhere).unwrap(),
        &other
    ));
    std::fs::remove_dir_all(&root).ok();
}

/// `pretext report RUNS --out R`, R a run folder: refused by name, nothing written into it.
#[test]
fn a_report_is_not_written_into_a_run_folder() {
    let root = common::scratch("report-into-run");
    let runs = root.join("runs/exp");
    fake_run(&runs, "seed=1", 0.0);
    let run = runs.join("seed=1");
    let before: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let o = common::pretext()
        .arg("report")
        .arg(&runs)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let text = common::output_text(&o);
    assert!(
        !o.status.success() && text.contains("this folder holds a fine-tuning run"),
        "{text}"
    );
    let after: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before.len(), after.len(), "{after:?}");
    std::fs::remove_dir_all(&root).ok();
}
