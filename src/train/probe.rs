//! Linear probes for the pair tasks a model was not trained on. ALBERT's argument for SOP
//! (Lan et al. 2019, Table 5) is a cross table: an NSP-trained model is near chance on SOP,
//! an SOP-trained one does well on NSP. A model only answers a pair question through a head
//! trained for it, so for each pair task the run did not train, a logistic-regression probe
//! is fitted on the frozen pooled [CLS] output of a fixed probe set — pairs drawn from the
//! training split with the evaluation seed — and scored on the shared held-out pairs of
//! `evaluation`. The encoder is untouched; the probe is fitted to convergence (Newton's
//! method, which has no learning rate to choose), with its L2 strength chosen from a grid on a
//! quarter of the probe pairs — so a probe near chance means the [CLS] holds no linear answer,
//! not that the fit stopped early. Deterministic: the figure depends on the weights alone.

use super::evaluation::{EvalSet, Layout, EVAL_BATCH, EVAL_SEED};
use crate::data::{Batch, BatchStream, PairMode, Prepared, StreamSettings};
use crate::model::{Dev, Encoder, InputError, Mode};
use dfdx::prelude::*;

/// Pairs the probe is fitted on.
pub const PROBE_PAIRS: usize = 4096;
/// The L2 strengths tried (per pair, on the weights but not the bias).
const L2_GRID: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];
/// Newton steps at most; the fit stops earlier once a step moves no weight by 1e-9.
const NEWTON_STEPS: usize = 50;

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
        out.push((
            format!("probe/{}/accuracy", Layout::task_name(task)),
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

/// Logistic regression on `xs` (`w[0]` is the bias) with the L2 strength of [`L2_GRID`]
/// that scores best on the last quarter of the pairs when fitted on the rest (ties: the
/// stronger), then refitted on all of them with it.
pub fn fit(xs: &[Vec<f64>], ys: &[u32]) -> Vec<f64> {
    let cut = xs.len() - xs.len() / 4;
    let hits = |w: &[f64]| {
        xs[cut..]
            .iter()
            .zip(&ys[cut..])
            .filter(|(x, &y)| (score(w, x) > 0.0) == (y == 1))
            .count()
    };
    let mut best = (0, L2_GRID[0]);
    for l2 in L2_GRID {
        let h = hits(&fit_with(&xs[..cut], &ys[..cut], l2));
        if h >= best.0 {
            best = (h, l2);
        }
    }
    fit_with(xs, ys, best.1)
}

/// The minimum of the mean logistic loss plus `l2/2 · |w[1..]|²`, by Newton's method from
/// zero weights: the loss is strictly convex, so it converges (quadratically, near the end).
pub fn fit_with(xs: &[Vec<f64>], ys: &[u32], l2: f64) -> Vec<f64> {
    let d = xs.first().map_or(0, Vec::len) + 1;
    let n = xs.len().max(1) as f64;
    let mut w = vec![0.0; d];
    let mut x1 = vec![1.0; d];
    for _ in 0..NEWTON_STEPS {
        let mut g = vec![0.0; d];
        let mut h = vec![0.0; d * d];
        for (x, &y) in xs.iter().zip(ys) {
            x1[1..].copy_from_slice(x);
            let p = 1.0 / (1.0 + (-score(&w, x)).exp());
            let (e, c) = (p - f64::from(y), (p * (1.0 - p)).max(1e-12));
            for i in 0..d {
                g[i] += e * x1[i];
                let ci = c * x1[i];
                for (hij, xj) in h[i * d..=i * d + i].iter_mut().zip(&x1) {
                    *hij += ci * xj;
                }
            }
        }
        for i in 0..d {
            // The bias is not decayed; a tiny ridge keeps the system positive definite.
            let decay = if i == 0 { 1e-9 } else { l2 };
            g[i] = g[i] / n + decay * w[i];
            for j in 0..=i {
                h[i * d + j] /= n;
            }
            h[i * d + i] += decay;
        }
        let step = solve_cholesky(&mut h, d, &g);
        let mut largest = 0.0f64;
        for (wi, si) in w.iter_mut().zip(&step) {
            *wi -= si;
            largest = largest.max(si.abs());
        }
        if largest < 1e-9 {
            break;
        }
    }
    w
}

/// Solves `A x = b` for the symmetric positive definite `A` whose lower triangle is in `a`
/// (row-major, `d × d`; overwritten by its Cholesky factor).
fn solve_cholesky(a: &mut [f64], d: usize, b: &[f64]) -> Vec<f64> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        let diag = diag.max(1e-300).sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for k in 0..j {
                v -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = v / diag;
        }
    }
    let mut y = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            y[i] -= a[i * d + k] * y[k];
        }
        y[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            y[i] -= a[k * d + i] * y[k];
        }
        y[i] /= a[i * d + i];
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean logistic loss plus the L2 term that `fit_with` minimises.
    fn objective(w: &[f64], xs: &[Vec<f64>], ys: &[u32], l2: f64) -> f64 {
        let loss: f64 = xs
            .iter()
            .zip(ys)
            .map(|(x, &y)| {
                let s = score(w, x);
                // log(1 + e^s) − y·s, written to stay finite for large |s|.
                s.max(0.0) + (-s.abs()).exp().ln_1p() - f64::from(y) * s
            })
            .sum::<f64>()
            / xs.len() as f64;
        loss + 0.5 * l2 * w[1..].iter().map(|v| v * v).sum::<f64>()
    }

    /// Newton's fit lands on the minimum: every central-difference derivative of the
    /// objective is zero there, on overlapping classes (a finite optimum) with a weak L2.
    #[test]
    fn the_fit_is_the_minimum_of_its_objective() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let xs: Vec<Vec<f64>> = (0..500)
            .map(|_| (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        let ys: Vec<u32> = xs
            .iter()
            .map(|x| u32::from(x[0] - x[2] + rng.gen_range(-0.8..0.8) > 0.2))
            .collect();
        let l2 = 1e-3;
        let w = fit_with(&xs, &ys, l2);
        let h = 1e-5;
        for i in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let d = (objective(&up, &xs, &ys, l2) - objective(&down, &xs, &ys, l2)) / (2.0 * h);
            assert!(d.abs() < 1e-7, "∂/∂w[{i}] = {d:e} at the fit {w:?}");
        }
        // And it is not the start: the classes are far from balanced by chance alone.
        assert!(w[1] > 1.0 && w[3] < -1.0, "{w:?}");
    }

    #[test]
    fn cholesky_solves_a_positive_definite_system() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let b = [1.0, -2.0, 0.5];
        let mut a: Vec<f64> = m.iter().flatten().copied().collect();
        let x = solve_cholesky(&mut a, 3, &b);
        for (row, bi) in m.iter().zip(b) {
            let r: f64 = row.iter().zip(&x).map(|(a, x)| a * x).sum();
            assert!((r - bi).abs() < 1e-12, "{x:?}");
        }
    }
}
