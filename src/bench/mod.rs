//! `pretext bench`: throughput of the one training loop on a fixed configuration, with the
//! numbers a comparison needs — tokens per second, achieved GFLOP/s and peak resident memory.
//! The reference configuration is issue 7's: BERT L=4, H=256, A=4, FF=1024, vocabulary 8192,
//! sequence 128, batch 32, AdamW, MLM + NSP; `large` is L=6, H=512, A=8, FF=2048, and `small`
//! L=4, H=128, A=4, FF=512 (the CPU-fast recipe's model, where per-call overheads weigh most).
//! `benches/reference.py` trains the same configuration in PyTorch and `benches/compare.sh`
//! alternates the two.
//!
//! The data are random token ids drawn from a Zipf law, as word frequencies are (the text
//! does not change the arithmetic, but a loss that can fall makes the loss trace of
//! tests/bench_trace.rs a check of learning, not only of arithmetic), through the real
//! sampler, masker and loop, so what is timed is what a run does.

pub mod gemm;

use crate::config::{Experiment, LoadedExperiment, Precision};
use crate::data::{Prepared, Tokenizer};
use crate::rng::stream;
use crate::train::{TrainError, Trainer};
use rand::Rng as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub seq: usize,
    pub batch: usize,
    /// Hidden and attention dropout (BERT's 0.1): the masks are drawn on the host, so a
    /// GPU run without them shows what they cost.
    pub dropout: f32,
    /// The matrix products' arithmetic (`training.precision`).
    pub precision: Precision,
    /// `training.dense_last_layer`: the last block at every token, as code that does not
    /// prune it computes (the comparison of equal work).
    pub dense_last_layer: bool,
}

pub const REFERENCE: Shape = Shape {
    layers: 4,
    hidden: 256,
    heads: 4,
    ffn: 1024,
    vocab: 8192,
    seq: 128,
    batch: 32,
    dropout: 0.1,
    precision: Precision::Fp32,
    dense_last_layer: false,
};

pub const SMALL: Shape = Shape {
    layers: 4,
    hidden: 128,
    heads: 4,
    ffn: 512,
    ..REFERENCE
};

pub const LARGE: Shape = Shape {
    layers: 6,
    hidden: 512,
    heads: 8,
    ffn: 2048,
    ..REFERENCE
};

/// The share of positions the benchmark's MLM masks (the objective's default, which
/// `experiment` leaves as it is).
pub const MASK_RATE: f64 = 0.15;

/// What one benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    /// `cpu`, or `cuda` for a build with the `cuda` feature.
    pub device: &'static str,
    /// The matrix kernels' instruction set on the CPU (`avx512`, `avx2`, or `generic`):
    /// the one setting that moves these figures most between machines.
    pub simd: &'static str,
    /// The products' precision as run (`bf16` only where the CPU has AVX512-BF16).
    pub precision: &'static str,
    /// The bf16 products' kernel (`amx` tiles or `avx512-bf16`'s `vdpbf16ps`), for a bf16
    /// run: on Intel's Xeons the two differ sixfold in peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_kernel: Option<&'static str>,
    /// Untimed steps before the timed ones. The learning-rate schedule spans both, so two
    /// loss traces are comparable only when warm-up and steps both agree.
    pub warmup: u64,
    pub steps: u64,
    /// Which rows the last block computed (its attention queries and feed-forward):
    /// `every-row`, or `rows-read` (the masked and [CLS] rows, `Encoder::forward_rows`).
    pub last_layer: &'static str,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub gflops_per_second: f64,
    pub peak_rss_mib: f64,
    /// Loss of every timed step, to compare curves across optimisations.
    pub losses: Vec<f64>,
}

impl Measured {
    /// The lines `pretext bench` prints: throughput, memory, loss, kernels, and the
    /// model-FLOP utilisation when the device's peak TFLOP/s is given.
    pub fn describe(&self, shape: &Shape, peak_tflops: Option<f64>) -> String {
        let mut s = format!(
            "{shape:?}\n{} steps in {:.1} s: {:.0} tokens/s, {:.1} GFLOP/s, peak RSS {:.0} MiB, loss {:.3} → {:.3}\ndevice: {} (matrix kernels: {}, products in {}, last block at {})",
            self.steps,
            self.seconds,
            self.tokens_per_second,
            self.gflops_per_second,
            self.peak_rss_mib,
            self.losses.first().copied().unwrap_or(f64::NAN),
            self.losses.last().copied().unwrap_or(f64::NAN),
            self.device,
            self.simd,
            match self.bf16_kernel {
                Some(k) => format!("{} on {k}", self.precision),
                None => self.precision.to_string(),
            },
            self.last_layer,
        );
        if let Some(peak) = peak_tflops {
            s += &format!(
                "\nmodel-FLOP utilisation: {:.1} % of {peak} TFLOP/s",
                100.0 * self.gflops_per_second / (peak * 1e3)
            );
        }
        s
    }
}

/// The experiment of a shape: MLM (15%) + NSP, AdamW with warm-up, the shape's dropout. A shape or
/// step count the experiment file's rules refuse (0 steps, a hidden size the heads do not
/// divide) is an error that says why.
pub fn experiment(s: &Shape, steps: u64, seed: u64) -> Result<Experiment, TrainError> {
    let text = format!(
        "name = \"bench\"\n[model]\nlayers = {}\nhidden = {}\nheads = {}\nffn = {}\nmax_positions = {}\n\
         dropout = {}\nattention_dropout = {}\n\
         [[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"nsp\"\n\
         [optimizer]\nlr = 5e-4\nwarmup_steps = 1\n\
         [training]\nsteps = {steps}\nbatch_size = {}\nseq_len = {}\nshort_seq_prob = 0.0\neval_every = 0\ncheckpoint_every = 0\nseed = {seed}\nprecision = \"{}\"\ndense_last_layer = {}\n",
        s.layers, s.hidden, s.heads, s.ffn, s.seq, s.dropout, s.dropout, s.batch, s.seq,
        s.precision.name(), s.dense_last_layer
    );
    let mut exp =
        LoadedExperiment::from_str(&text, Path::new("<bench>")).map_err(|e| TrainError::Io {
            path: "<bench>".into(),
            reason: format!("the benchmark's settings are refused: {e}"),
        })?;
    Ok(exp.runs.remove(0).config)
}

/// A vocabulary of `vocab` tokens and random documents over it.
pub fn synthetic_data(vocab: usize, seed: u64, dir: &Path) -> std::io::Result<Prepared> {
    let mut words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend((words.len()..vocab).map(|i| format!("w{i}")));
    std::fs::create_dir_all(dir)?;
    let path = dir.join("bench-vocab.txt");
    std::fs::write(&path, words.join("\n"))?;
    let tokenizer = Tokenizer::load(&path, true).map_err(std::io::Error::other)?;
    let mut rng = stream(seed, "bench.data");
    let zipf = rand_distr::Zipf::new(vocab.saturating_sub(5).max(1) as u64, 1.1)
        .map_err(|e| std::io::Error::other(format!("vocabulary of {vocab}: {e}")))?;
    let docs: Vec<Vec<Vec<u32>>> = (0..400)
        .map(|_| {
            (0..rng.gen_range(8..24))
                .map(|_| {
                    (0..rng.gen_range(8..40))
                        .map(|_| 4 + rng.sample(zipf) as u32)
                        .collect()
                })
                .collect()
        })
        .collect();
    let sentences = docs.iter().map(Vec::len).sum();
    Ok(Prepared {
        tokenizer: Arc::new(tokenizer),
        train: Arc::new(docs.into()),
        heldout: Arc::new(Vec::new().into()),
        cache: None,
        train_sentences: sentences,
    })
}

/// Training FLOPs of one sequence position, counted the usual way: 6 per weight a token
/// meets (forward 2, backward 4), attention scores and mixing (12·S·H per layer), and the
/// MLM head's vocabulary projection for the masked positions only (what pretext computes).
/// The last block counts at every token, as a model's FLOPs are counted, although pretext
/// computes it at the rows the objectives read only (`Encoder::forward_rows`): the rate is
/// of the model's work, not of the products run.
pub fn flops_per_token(s: &Shape, mask_rate: f64) -> f64 {
    let (h, f, l) = (s.hidden as f64, s.ffn as f64, s.layers as f64);
    let per_layer = 4.0 * h * h + 2.0 * h * f;
    let encoder = 6.0 * l * per_layer + 12.0 * l * s.seq as f64 * h;
    let heads = 6.0 * mask_rate * (h * h + h * s.vocab as f64) + 6.0 * h * h / s.seq as f64;
    encoder + heads
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The kernels `gemm` chooses at run time: AVX-512 where the CPU has x86-64-v4's AVX-512
/// subsets (our build enables gemm's `x86-v4`), else AVX2 with FMA. A CUDA build's products
/// run in cuBLAS (dfdx's f32 `sgemm`, no TF32), whatever the CPU has.
pub fn simd() -> &'static str {
    if cfg!(feature = "cuda") {
        return "cublas-f32";
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl")
        {
            return "avx512";
        }
        if has!("avx2") && has!("fma") {
            return "avx2";
        }
    }
    "generic"
}

/// What `pretext bench` was asked for besides the shape.
pub struct Options {
    /// Worker threads (all cores by default).
    pub threads: Option<usize>,
    pub warmup: u64,
    pub steps: u64,
    pub json: bool,
    pub peak_tflops: Option<f64>,
    /// Time the step's matrix products alone (`gemm::run`) instead of training.
    pub gemm: bool,
}

/// `pretext bench`: `warmup` untimed and `steps` timed steps of `shape`, printed as text or
/// as one JSON object; with `gemm`, the step's products alone.
pub fn command(shape: &Shape, o: &Options) -> anyhow::Result<()> {
    // The step runs on a thread of the pool, as a training job does (`pool::own_threads`).
    crate::pool::own_threads(o.threads.unwrap_or(0), || timed(shape, o))
}

fn timed(shape: &Shape, o: &Options) -> anyhow::Result<()> {
    if o.gemm {
        let timed = gemm::run(shape, 0.5);
        match o.json {
            true => println!("{}", serde_json::to_string(&timed)?),
            false => print!("{}", gemm::describe(&timed)),
        }
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("pretext-bench-{}", std::process::id()));
    let m = run(shape, o.warmup, o.steps, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let m = m?;
    if o.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!("{}", m.describe(shape, o.peak_tflops));
    }
    Ok(())
}

/// Trains `warmup` untimed steps, then `steps` timed ones.
pub fn run(shape: &Shape, warmup: u64, steps: u64, dir: &Path) -> Result<Measured, TrainError> {
    let cfg = experiment(shape, warmup.saturating_add(steps), 1)?;
    let data = synthetic_data(shape.vocab, 1, dir).map_err(|e| TrainError::Io {
        path: dir.into(),
        reason: e.to_string(),
    })?;
    let mut trainer = Trainer::new(&cfg, &data)?;
    if let Some(note) = &trainer.precision_note {
        eprintln!("pretext bench: {note}");
    }
    for _ in 0..warmup {
        trainer.train_step()?;
    }
    let started = Instant::now();
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(trainer.train_step()?.0.total_loss);
    }
    let seconds = started.elapsed().as_secs_f64();
    let tokens = (shape.batch * shape.seq) as f64 * steps as f64;
    Ok(Measured {
        device: crate::model::DEVICE_NAME,
        simd: simd(),
        precision: trainer.precision.name(),
        bf16_kernel: (trainer.precision == crate::config::Precision::Bf16)
            .then(crate::model::fused::gemm_bf16::kernel_name),
        warmup,
        steps,
        last_layer: if !shape.dense_last_layer && trainer.bundle.encoder.computes_some_rows() {
            "rows-read"
        } else {
            "every-row"
        },
        seconds,
        tokens_per_second: tokens / seconds,
        gflops_per_second: tokens * flops_per_token(shape, MASK_RATE) / seconds / 1e9,
        peak_rss_mib: peak_rss_mib(),
        losses,
    })
}
