//! Two small trained runs (MLM and SOP, 40 steps of the embedded corpus), shared by the
//! tests of a checkpoint's use outside training: `tests/predict.rs` (fill, eval, bias) and
//! `tests/export.rs` (`pretext export --hf`).

use std::path::PathBuf;

/// The experiment both runs come from.
pub const EXPERIMENT: &str = r#"
name = "predict"
[data]
corpus = ["embedded"]
heldout_fraction = 0.2
[tokenizer]
vocab_size = 600
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 64
[optimizer]
lr = 2e-3
warmup_steps = 5
[training]
steps = 40
batch_size = 8
seq_len = 64
eval_every = 20
eval_batches = 3
log_every = 10
checkpoint_every = 20
[ablation]
objectives = [[{name = "mlm"}], [{name = "sop"}]]
"#;

/// Trains the two runs once for every test of a test binary; returns their folder.
pub fn runs() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = super::scratch("predict");
        std::fs::write(dir.join("predict.toml"), EXPERIMENT).unwrap();
        let o = super::run_in(&dir, "predict.toml")
            .arg("--no-report")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir
    })
}

/// `pretext ARGS`: exit code, stdout, stderr.
pub fn pretext(args: &[&str]) -> (Option<i32>, String, String) {
    let o = super::pretext().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

/// One variant's run folder.
pub fn run_dir(variant: &str) -> PathBuf {
    runs().join("runs/predict").join(variant)
}
