//! Issue 19: special files given where a file is expected. A FIFO nobody writes to made every
//! reader wait forever in `open`, and `/dev/zero` would be read until memory ran out; each is
//! now refused before it is opened, naming the path and what it is. The experiment file may
//! be a pipe on purpose (`pretext run <(generate)`): a named one without a writer is waited
//! for with a line that says so, and read once written. A file where a folder is to be made
//! (`--reports-dir notes.txt`) is refused before any work.

mod common;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// `pretext ARGS` in `dir`: exit code and all it printed.
fn in_dir(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = common::pretext()
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (o.status.code(), common::output_text(&o))
}

/// Waits for `child` at most a minute (killing it after): exit code and all it printed.
fn finish(mut child: Child, what: &str) -> (Option<i32>, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{what}: still waiting after a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    (o.status.code(), common::output_text(&o))
}

/// Each reader of a file the user names, given a FIFO or `/dev/zero`; then a run's own file
/// given as the folder `--out` of `report` and `finetune`, refused and left as it was.
#[test]
fn a_fifo_or_a_device_where_a_file_is_read_is_refused_before_opening() {
    let dir = common::scratch("special-files");
    let run = common::pretrain_tiny(&dir);
    let glue = common::sst2_folder(&dir, 8, 4);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let r = run.to_str().unwrap();
    let g = glue.to_str().unwrap();
    let finetune = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["finetune", "--task", "sst2", "--data", g, "--epochs", "1"]
            .map(String::from)
            .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (finetune(&["--checkpoint", f]), f),
        (finetune(&["--checkpoint", "/dev/zero"]), "/dev/zero"),
        (finetune(&["--checkpoint", r, "--tokenizer", f]), f),
        (
            ["fill", r, "the [MASK] .", "--tokenizer", f]
                .map(String::from)
                .to_vec(),
            f,
        ),
        (["bias", r, "--data", f].map(String::from).to_vec(), f),
        (["export", f, "--hf", "x"].map(String::from).to_vec(), f),
    ];
    for (args, path) in cases {
        let child = common::pretext()
            .args(&args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, msg) = finish(child, &args.join(" "));
        assert_eq!(code, Some(1), "{args:?}: {msg}");
        assert!(msg.contains(path), "{args:?}: {msg}");
        assert!(
            msg.contains("not a regular file: a FIFO") || msg.contains("a device"),
            "{args:?}: {msg}"
        );
    }
    let before = std::fs::read(dir.join("victim.toml")).unwrap();
    let report = ["report", "runs/victim", "--out", "victim.toml"].map(String::from);
    let finetune = finetune(&[
        "--checkpoint",
        r,
        "--max-seq-len",
        "16",
        "--out",
        "victim.toml",
    ]);
    for args in [report.to_vec(), finetune] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, msg) = in_dir(&dir, &args);
        assert_eq!(code, Some(1), "{args:?}: {msg}");
        assert!(
            msg.contains("victim.toml: not a folder; --out takes a folder"),
            "{args:?}: {msg}"
        );
    }
    assert_eq!(std::fs::read(dir.join("victim.toml")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file where pretext would make a folder is refused before training (the report's folder
/// used to fail after it; a tokenizer's, after training the vocabulary); a folder that does
/// not exist yet is made.
#[test]
fn a_file_where_a_folder_is_to_be_made_is_refused_before_any_work() {
    let dir = common::scratch("file-for-folder");
    std::fs::write(dir.join("victim.toml"), common::TINY_RUN).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(
        dir.join("corpus.txt"),
        "the film was good .\nthe book was bad .\n",
    )
    .unwrap();
    let pretext = |args: &[&str]| in_dir(&dir, args);
    let (code, msg) = pretext(&[
        "run",
        "victim.toml",
        "--quiet",
        "--reports-dir",
        "notes.txt",
    ]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("notes.txt/victim: notes.txt is not a folder, so --reports-dir"),
        "{msg}"
    );
    assert!(!dir.join("runs").exists(), "a refused run left its folder");

    let tok = [
        "tokenizer",
        "train",
        "--corpus",
        "corpus.txt",
        "--vocab-size",
        "50",
        "--out",
    ];
    let (code, msg) = pretext(&[&tok[..], &["notes.txt/tok.json"]].concat());
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("--out notes.txt/tok.json: notes.txt is not a folder"),
        "{msg}"
    );
    let (code, msg) = pretext(&[&tok[..], &["new/folder/tok.json"]].concat());
    assert_eq!(code, Some(0), "{msg}");
    assert!(dir.join("new/folder/tok.json").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_experiment_fifo_is_waited_for_with_a_line_then_read() {
    let dir = common::scratch("experiment-fifo");
    let fifo = dir.join("e.toml");
    mkfifo(&fifo);
    let mut child = common::pretext()
        .arg("validate")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        tx.send(line).unwrap();
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
        child.kill().unwrap();
        panic!("no line about the wait within a minute");
    };
    assert!(line.contains("waiting for its writer"), "{line}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(common::TINY_RUN.as_bytes())
        .unwrap();
    let (code, msg) = finish(child, "validate on a FIFO");
    assert_eq!(code, Some(0), "{line}{msg}");
}
