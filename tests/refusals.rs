//! Issue 19's careless-user cases of session 20, through the binary as a user types them:
//! numeric flags past what a run can mean, `[slurm]` values that would break the generated
//! script, and fine-tuning refusals that must come before a run folder is written.

mod common;

use std::path::Path;

/// Runs `pretext ARGS` then each `(flag, path)` (a positional path where the flag is empty)
/// and returns (exit code, everything it printed).
fn pretext(args: &[&str], paths: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut c = common::pretext();
    c.args(args);
    for (flag, p) in paths {
        if !flag.is_empty() {
            c.arg(flag);
        }
        c.arg(p);
    }
    let o = c.output().unwrap();
    (o.status.code(), common::output_text(&o))
}

#[test]
fn numeric_flags_past_their_meaning_are_refused_by_name() {
    for (args, flag) in [
        (&["bench", "--peak-tflops", "0"][..], "--peak-tflops"),
        (&["bench", "--peak-tflops", "nan"][..], "--peak-tflops"),
        (&["finetune", "--epochs", "2000000"][..], "--epochs"),
        (
            &["finetune", "--seed", "18446744073709551615"][..],
            "--seed",
        ),
        (&["finetune", "--batch-size", "0"][..], "--batch-size"),
    ] {
        let (code, msg) = pretext(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {msg}");
        assert!(msg.contains(flag), "{args:?}: {msg}");
    }
}

/// Each `[slurm]` value lands in an `#SBATCH` line: one Slurm cannot parse, or one holding a
/// line break (a directive or a shell command of its own), is refused — from the file with
/// its line, from a flag by the flag's name — and no script is written.
#[test]
fn slurm_values_that_would_break_the_script_are_refused() {
    let dir = common::scratch("slurm-values");
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "name = \"s\"\n[data]\ncorpus = [\"embedded\"]\n[slurm]\nmem = \"8 GB\"\n\
         extra = [\"--account=x\\nrm -rf ~\"]\n",
    )
    .unwrap();
    let (code, msg) = pretext(&["validate"], &[("", &file)]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("s.toml:5: key `slurm.mem`"), "{msg}");
    assert!(msg.contains("s.toml:6: key `slurm.extra`"), "{msg}");

    std::fs::write(&file, "name = \"s\"\n[data]\ncorpus = [\"embedded\"]\n").unwrap();
    let script = dir.join("sweep.sbatch");
    for (flag, value) in [
        ("--cpus-per-task", "0"),
        ("--mem", "4G\n#SBATCH --wrap=x"),
        ("--time", "1:00; rm -rf /"),
        ("--partition", "a b"),
    ] {
        let (code, msg) = pretext(
            &["sweep", "--slurm", flag, value],
            &[
                ("--out", &script),
                ("--runs-dir", &dir.join("runs")),
                ("", &file),
            ],
        );
        assert_eq!(code, Some(1), "{flag}: {msg}");
        assert!(msg.contains(flag), "{flag}: {msg}");
        assert!(!script.exists(), "{flag}: a script was written");
        assert!(
            !dir.join("runs").exists(),
            "{flag}: data was prepared first"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dev file without an example, a sequence length with no room for text, a learning rate
/// of 0, a runs folder inside a run and an export into a device are refused by name, leaving
/// nothing behind.
#[test]
fn refusals_around_a_finished_run_leave_nothing_behind() {
    let dir = common::scratch("finetune-refusals");
    let run = common::pretrain_tiny(&dir);
    let glue = common::sst2_folder(&dir, 8, 0);
    let out = dir.join("ft");
    let paths = [
        ("--checkpoint", run.as_path()),
        ("--data", &glue),
        ("--out", &out),
    ];
    let finetune = |len: &str| {
        let args = [
            "finetune",
            "--task",
            "sst2",
            "--epochs",
            "1",
            "--max-seq-len",
            len,
        ];
        pretext(&args, &paths)
    };
    let (code, msg) = finetune("32");
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("dev.tsv: no examples"), "{msg}");
    assert!(
        !out.exists(),
        "a refused fine-tuning left {}",
        out.display()
    );

    common::sst2_folder(&dir, 8, 8);
    let (code, msg) = finetune("3");
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("--max-seq-len: expected at least 5"), "{msg}");
    assert!(!out.exists());

    // `--lr` sets the fine-tuning and the probe rate; its problem was named `--probe-lr`.
    let (code, msg) = pretext(&["finetune", "--task", "sst2", "--lr", "0"], &paths);
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("--lr: expected > 0") && !msg.contains("probe"),
        "{msg}"
    );
    assert!(!out.exists());

    // A runs folder inside a run folder: the experiment would land among its checkpoints.
    let inside = run.join("nested");
    let (code, msg) = pretext(
        &["run", "--quiet"],
        &[("", &dir.join("victim.toml")), ("--runs-dir", &inside)],
    );
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("inside the pretraining run"), "{msg}");
    assert!(!inside.exists());

    // An export into a device used to say "creating /dev/null: File exists".
    let (code, msg) = pretext(&["export"], &[("", &run), ("--hf", Path::new("/dev/null"))]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("/dev/null: not a folder"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fine-tuning batch check, with the machine's memory given: the tiny encoder's batch of
/// 32 sequences fits in 1 GiB; a million sequences of 512 tokens does not, and the message
/// says what it would need.
#[test]
fn a_finetuning_batch_is_measured_against_the_memory_given() {
    let e = common::experiment(common::TINY_RUN, "tiny.toml");
    let gib = (1u64 << 30) as f64;
    let refuse = pretext::config::memory::refuse_finetune;
    assert_eq!(refuse(&e.model, 300, 32, 32, gib), None);
    let why = refuse(&e.model, 300, 1_000_000, 512, gib).expect("a million sequences");
    assert!(
        why.contains("one batch of 1000000 sequences of up to 512 tokens"),
        "{why}"
    );
    assert!(why.contains("more than this machine's 1.0 GiB"), "{why}");
}
