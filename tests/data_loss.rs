//! Issue 19's data-loss cases, run through the `pretext` binary as a user would: each command
//! that would have overwritten another run's or an input's files must be refused with a
//! message naming the file, and the victim files must be byte-identical afterwards.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn finetune_into_a_pretraining_run_is_refused_and_leaves_it_intact() {
    let dir = common::scratch("finetune");
    let run = common::pretrain_tiny(&dir);
    let glue = common::sst2_folder(&dir, 16, 16);
    let before = snapshot(&run);
    assert!(before.keys().any(|p| p.ends_with("summary.json")));
    let o = common::pretext()
        .args([
            "finetune",
            "--task",
            "sst2",
            "--epochs",
            "1",
            "--max-seq-len",
            "32",
        ])
        .arg("--checkpoint")
        .arg(&run)
        .arg("--data")
        .arg(&glue)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let msg = common::output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("holds a pretraining run"), "{msg}");
    assert!(msg.contains(&run.display().to_string()), "{msg}");
    assert_eq!(
        snapshot(&run),
        before,
        "the pretraining run's files changed"
    );

    // The default output folder (below the run) is still fine.
    let o = common::pretext()
        .args([
            "finetune",
            "--task",
            "sst2",
            "--epochs",
            "1",
            "--max-seq-len",
            "32",
        ])
        .arg("--checkpoint")
        .arg(&run)
        .arg("--data")
        .arg(&glue)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pretext finetune --predict FILE` may not replace an input (a data file) or another run's
/// file; a fresh path gets the run's predictions, as its folder keeps them.
#[test]
fn predict_file_refuses_inputs_and_run_files_and_writes_glue_tsv() {
    let dir = common::scratch("predict");
    let run = common::pretrain_tiny(&dir);
    let glue = common::sst2_folder(&dir, 12, 12);
    let finetune = |predict: &Path, out: &Path| {
        common::pretext()
            .args(["finetune", "--task", "sst2", "--epochs", "1"])
            .args(["--max-seq-len", "32"])
            .arg("--checkpoint")
            .arg(&run)
            .arg("--data")
            .arg(&glue)
            .arg("--out")
            .arg(out)
            .arg("--predict")
            .arg(predict)
            .output()
            .unwrap()
    };
    let data_before = snapshot(&glue);
    let run_before = snapshot(&run);
    // The dev file, spelled through `.`, and a file of the pretraining run.
    for (victim, says) in [
        (
            glue.join(".").join("dev.tsv"),
            "the output is also an input",
        ),
        (run.join("summary.json"), "holds a pretraining run"),
    ] {
        let o = finetune(&victim, &dir.join("ft"));
        let msg = common::output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{msg}");
        assert!(msg.contains(says), "{msg}");
        assert!(msg.contains("--predict"), "{msg}");
        assert!(!dir.join("ft").exists(), "refused before training");
    }
    assert_eq!(snapshot(&glue), data_before, "the data files changed");
    assert_eq!(snapshot(&run), run_before, "the pretraining run changed");

    let file = dir.join("sst2-dev.tsv");
    let o = finetune(&file, &dir.join("ft"));
    assert!(o.status.success(), "{}", common::output_text(&o));
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        written,
        std::fs::read_to_string(dir.join("ft/predictions.tsv")).unwrap()
    );
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines[0], "index\tprediction");
    assert_eq!(lines.len(), 13, "{written}");
    for (i, l) in lines[1..].iter().enumerate() {
        let (index, label) = l.split_once('\t').unwrap();
        assert_eq!(index, i.to_string());
        assert!(label == "0" || label == "1", "{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokenizer_out_that_is_the_corpus_is_refused() {
    let dir = common::scratch("tokenizer");
    let corpus = dir.join("a.txt");
    let words = "the cat sat on the mat . a dog ran in the park .\n";
    std::fs::write(&corpus, words.repeat(50)).unwrap();
    let before = std::fs::read(&corpus).unwrap();
    // Same file, spelled another way: the check compares canonical paths.
    let spelled = dir.join(".").join("a.txt");
    let o = common::pretext()
        .args(["tokenizer", "train", "--vocab-size", "60", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&spelled)
        .output()
        .unwrap();
    let msg = common::output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("the output is also an input"), "{msg}");
    assert_eq!(std::fs::read(&corpus).unwrap(), before);

    // An existing file that is not a tokenizer is not replaced either.
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "my notes").unwrap();
    let o = common::pretext()
        .args(["tokenizer", "train", "--vocab-size", "60", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&notes)
        .output()
        .unwrap();
    let msg = common::output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("not a tokenizer file"), "{msg}");
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes");

    // A fresh path works, and so does replacing a tokenizer with a new one.
    let out = dir.join("tok.json");
    for _ in 0..2 {
        let o = common::pretext()
            .args(["tokenizer", "train", "--vocab-size", "60", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second `pretext run` of the same experiment waits for the experiment lock, then uses the
/// tokenizer made under it instead of training and saving its own over it.
#[test]
fn a_second_run_of_an_experiment_never_replaces_its_tokenizer() {
    let dir = common::scratch("shared");
    std::fs::write(dir.join("victim.toml"), common::TINY_RUN).unwrap();
    let exp_dir = dir.join("runs/victim");
    // Another process is making the shared tokenizer: we hold the lock and write it.
    let lock = pretext::rundir::ExperimentLock::acquire(&exp_dir).unwrap();
    let mut child = common::run_in(&dir, "victim.toml")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let corpus = dir.join("c.txt");
    std::fs::write(&corpus, "alpha beta gamma delta .\n".repeat(20)).unwrap();
    let tok =
        pretext::data::Tokenizer::train(std::iter::once("alpha beta gamma delta ."), 300, true, 1)
            .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run did not wait for the experiment lock"
    );
    let shared = exp_dir.join("tokenizer.json");
    assert!(
        !shared.exists(),
        "the run wrote the tokenizer without the lock"
    );
    tok.save(&shared).unwrap();
    let ours = std::fs::read(&shared).unwrap();
    drop(lock);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(&shared).unwrap(),
        ours,
        "the run replaced the experiment's tokenizer"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_refuses_zero_steps_without_panicking() {
    let o = common::pretext()
        .args(["bench", "--steps", "0", "--warmup", "0"])
        .output()
        .unwrap();
    let msg = common::output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains("--steps"), "{msg}");
    // The library refuses it too, with a reason rather than a panic.
    let shape = pretext::bench::Shape {
        layers: 1,
        hidden: 16,
        heads: 2,
        ffn: 32,
        vocab: 64,
        seq: 16,
        batch: 2,
        ..pretext::bench::REFERENCE
    };
    let dir = common::scratch("bench");
    let e = pretext::bench::run(&shape, 0, 0, &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("training.steps"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, item 8: a running run's metrics.jsonl (and TensorBoard events) reach the disk at
/// every log step, not only at checkpoints: while the run is still going, the file holds whole
/// rows, each flushed as it is logged, where a write buffer would have written a full 8 KiB
/// block cut in the middle of a row. (An earlier form asked for the first sight of the file to
/// be under 4 KiB, which a loaded machine could miss by polling late.)
#[test]
fn logs_reach_the_disk_at_every_log_step() {
    let dir = common::scratch("live");
    let text = common::TINY_RUN
        .replace("steps = 4\n", "steps = 100000\n")
        .replace("log_every = 2\n", "log_every = 1\n")
        .replace("checkpoint_every = 4\n", "checkpoint_every = 100000\n");
    std::fs::write(dir.join("live.toml"), text).unwrap();
    let mut child = common::pretext()
        .arg("run")
        .arg(dir.join("live.toml"))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .arg("--quiet")
        .arg("--no-report")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = dir.join("runs/victim/base/metrics.jsonl");
    let started = std::time::Instant::now();
    let mut sightings: Vec<String> = Vec::new();
    while sightings.len() < 3 && started.elapsed().as_secs() < 120 {
        let now = std::fs::read_to_string(&metrics).unwrap_or_default();
        if !now.is_empty() && sightings.last() != Some(&now) {
            sightings.push(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running, "the run ended before its logs were seen");
    assert!(
        sightings.len() == 3,
        "metrics.jsonl was seen to change {} time(s) in two minutes",
        sightings.len()
    );
    for seen in &sightings {
        assert!(
            seen.ends_with('\n') && seen.len() % 8192 != 0,
            "metrics.jsonl held a cut row ({} bytes): written by a buffer, not per row",
            seen.len()
        );
        for line in seen.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "not a whole row: {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 19: a finished run whose experiment file changed since is not silently passed off
/// as the new setting's result: the run is named with the differing line, its files stay as
/// they were, and --force retrains it.
#[test]
fn a_finished_run_of_a_changed_file_is_named_not_reused() {
    let dir = common::scratch("changed");
    let run = common::pretrain_tiny(&dir);
    let before = snapshot(&run);
    std::fs::write(
        dir.join("victim.toml"),
        common::TINY_RUN.replace("warmup_steps = 1", "warmup_steps = 2"),
    )
    .unwrap();
    let again = || common::run_in(&dir, "victim.toml");
    let o = again().output().unwrap();
    let msg = common::output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("run `base` finished with other settings")
            && msg.contains("warmup_steps = 1")
            && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(snapshot(&run), before);
    let o = again().arg("--force").output().unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
