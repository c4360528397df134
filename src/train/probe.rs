//! Linear probes for the pair tasks a model was not trained on. ALBERT's argument for SOP
//! (Lan et al. 2019, Table 5) is a cross table: an NSP-trained model is near chance on SOP,
//! an SOP-trained one does well on NSP. A model only answers a pair question through a head
//! trained for it, so for each pair task the run did not train, a logistic-regression probe
//! is fitted on the frozen pooled [CLS] output of a fixed probe set — pairs drawn from the
//! training split with the evaluation seed — and scored on the shared held-out pairs of
//! `evaluation`. The encoder is untouched; the probe is deterministic (zero start, full-batch
//! gradient descent), so the figure depends on the weights alone.

use super::evaluation::{EvalSet, Layout, EVAL_BATCH, EVAL_SEED};
use crate::data::{Batch, BatchStream, PairMode, Prepared, StreamSettings};
use crate::model::{Dev, Encoder, InputError, Mode};
use dfdx::prelude::*;

/// Pairs the probe is fitted on.
pub const PROBE_PAIRS: usize = 4096;
const STEPS: usize = 300;
const LR: f64 = 0.5;
const L2: f64 = 1e-3;

/// `(probe/<task>/accuracy, value)` for each pair task in `tasks` that the held-out set can
/// score; nothing when the training split cannot give pairs.
pub fn pair_probes(
    dev: &Dev,
    enc: &Encoder,
    prepared: &Prepared,
    set: &EvalSet,
    seq_len: usize,
    tasks: &[PairMode],
) -> Result<Vec<(String, f64)>, InputError> {
    let mut out = Vec::new();
    for &task in tasks {
        let layout = Layout {
            masked: false,
            pair: Some(task),
        };
        let Some(test) = set.batches(layout) else {
            continue;
        };
        let Some(train) = probe_batches(prepared, seq_len, task) else {
            continue;
        };
        let (xs, ys) = features(dev, enc, &train)?;
        let (tx, ty) = features(dev, enc, test)?;
        let w = fit(&xs, &ys);
        let hits = tx
            .iter()
            .zip(&ty)
            .filter(|(x, &y)| (score(&w, x) > 0.0) == (y == 1))
            .count();
        let name = match task {
            PairMode::Nsp => "nsp",
            PairMode::Sop => "sop",
            PairMode::Single => continue,
        };
        out.push((
            format!("probe/{name}/accuracy"),
            hits as f64 / ty.len().max(1) as f64,
        ));
    }
    Ok(out)
}

/// [`PROBE_PAIRS`] pairs of `task` from the training split, the same for every run.
fn probe_batches(prepared: &Prepared, seq_len: usize, task: PairMode) -> Option<Vec<Batch>> {
    let settings = StreamSettings {
        seq_len,
        short_seq_prob: 0.0,
        mode: task,
        masking: None,
    };
    let mut s = BatchStream::new(
        prepared.train.clone(),
        prepared.tokenizer.clone(),
        settings,
        EVAL_SEED,
        "data.probe",
    )
    .ok()?;
    (0..PROBE_PAIRS / EVAL_BATCH)
        .map(|_| s.next_batch(EVAL_BATCH).ok())
        .collect()
}

/// The pooled [CLS] output of every sequence (eval mode, no dropout) and its pair label.
fn features(
    dev: &Dev,
    enc: &Encoder,
    batches: &[Batch],
) -> Result<(Vec<Vec<f64>>, Vec<u32>), InputError> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in batches {
        let inp = super::trainer::inputs_of(enc, b)?;
        let hidden = enc.forward(dev, &inp, NoneTape, Mode::Eval);
        let pooled = enc.pool(dev, hidden, b.size, b.seq_len);
        let h = pooled.shape().1;
        let v = pooled.as_vec();
        xs.extend(
            v.chunks_exact(h)
                .map(|r| r.iter().map(|&x| x as f64).collect::<Vec<f64>>()),
        );
        ys.extend(&b.pair_labels);
    }
    Ok((xs, ys))
}

fn score(w: &[f64], x: &[f64]) -> f64 {
    w[0] + w[1..].iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
}

/// Logistic regression by full-batch gradient descent with a little L2, from zero weights:
/// `w[0]` is the bias. The pooled outputs are tanh-bounded, so no standardisation is needed.
pub fn fit(xs: &[Vec<f64>], ys: &[u32]) -> Vec<f64> {
    let d = xs.first().map_or(0, Vec::len);
    let mut w = vec![0.0; d + 1];
    let n = xs.len().max(1) as f64;
    for _ in 0..STEPS {
        let mut g = vec![0.0; d + 1];
        for (x, &y) in xs.iter().zip(ys) {
            let p = 1.0 / (1.0 + (-score(&w, x)).exp());
            let e = p - f64::from(y);
            g[0] += e;
            for (gi, xi) in g[1..].iter_mut().zip(x) {
                *gi += e * xi;
            }
        }
        for (i, (wi, gi)) in w.iter_mut().zip(&g).enumerate() {
            let decay = if i == 0 { 0.0 } else { L2 * *wi };
            *wi -= LR * (gi / n + decay);
        }
    }
    w
}
