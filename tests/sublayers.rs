//! Issue 16: each fused sublayer is the composition it replaces, bit for bit — the
//! feed-forward op (`fused::feed_forward`: `linear`, the host GELU, `linear`) and the attention
//! sublayer (`fused::self_attention`: three projections, the attention core, the output
//! projection), each with the residual connection it takes in (`x + drop(·)`, `x` its own input
//! or another tensor) — its output and the gradients of its inputs and of every weight and
//! bias, in f32 and in bf16 products (where the CPU has them), with and without biases, on 1
//! and 3 threads; attention with padding, ALiBi and dropout. And the MLM decoder with its loss
//! (`fused::linear_cross_entropy`: `linear`, then `cross_entropy`).

mod common;

use dfdx::prelude::*;
use pretext::config::Precision;
use pretext::model::attention::{Attention, ScoreBias};
use pretext::model::fused::{self, Residual};
use pretext::model::ops::feed_forward_unfused;
use pretext::model::params::Linear;
use pretext::model::precision::{autocast, cpu_has_bf16};
use pretext::model::{Act, Dev, Matrix, Mode, Pass};
use pretext::rng::stream;
use rand::Rng;
use std::sync::Arc;

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = stream(seed, "feed-forward-test");
    (0..n)
        .map(|_| scale * rng.gen_range(-1.0f32..1.0))
        .collect()
}

/// Output, then the gradients of x, of the other input (if the op used it) and of each
/// layer's weight and bias, as bits.
type Run = Vec<Vec<u32>>;

/// What an op under test returns: its output, its layers, and whether it used the other input.
type Made = (Act<OwnedTape<f32, Dev>>, Vec<Linear>, bool);

/// Runs `op` (given the device, the layers' builder, `x` and another input) on `threads`
/// threads with `precision`'s products, and returns what `Run` lists.
fn run<F>(rows: (usize, usize), precision: Precision, threads: usize, op: F) -> Run
where
    F: Fn(&Dev, &dyn Fn(usize, usize, u64) -> Linear, &Matrix, &Matrix) -> Made + Send + Sync,
{
    common::pool(threads).install(|| {
        let _products = autocast(precision);
        let dev = Dev::seed_from_u64(0);
        let (n, d) = rows;
        let x: Matrix = dev.tensor_from_vec(random(n * d, 30, 2.0), (n, d));
        let other: Matrix = dev.tensor_from_vec(random(n * d, 35, 2.0), (n, d));
        let r: Matrix = dev.tensor_from_vec(random(n * d, 40, 1.0), (n, d));
        let layer = |out: usize, inp: usize, seed: u64| Linear {
            weight: dev.tensor_from_vec(random(out * inp, seed, 0.5), (out, inp)),
            bias: Some(dev.tensor_from_vec(random(out, seed + 1, 0.5), (out,))),
        };
        let (y, layers, used_other) = op(&dev, &layer, &x, &other);
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut out = vec![bits(y.as_vec())];
        let g = (y * r).sum::<Rank0, _>().backward();
        out.push(bits(g.get(&x).as_vec()));
        if used_other {
            out.push(bits(g.get(&other).as_vec()));
        }
        for l in &layers {
            out.push(bits(g.get(&l.weight).as_vec()));
            if let Some(b) = &l.bias {
                out.push(bits(g.get(b).as_vec()));
            }
        }
        out
    })
}

/// Which residual connection the op under test takes into itself: none, its own input (as
/// post-LN's sublayers), or another tensor (as pre-LN's, whose input is the norm's output).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Res {
    None,
    Input,
    Other,
}

/// The precisions this CPU runs.
fn precisions() -> Vec<Precision> {
    if cpu_has_bf16() {
        vec![Precision::Fp32, Precision::Bf16]
    } else {
        eprintln!("this CPU lacks AVX512-BF16: bf16 products are not compared here");
        vec![Precision::Fp32]
    }
}

/// `got` (fused, on 1 and 3 threads) equal to `want` bit for bit, entry by entry.
fn assert_same(what: &str, got: &[Run], want: &Run) {
    assert!(want[1].iter().any(|&b| b != 0), "{what}: dx is all zeros");
    for (threads, got) in [1, 3].iter().zip(got) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                g == w,
                "{what}, {threads} threads: entry {i} of {:?} differs",
                RUN_ENTRIES
            );
        }
    }
}

const RUN_ENTRIES: &str = "output, dx, d(other input) if used, then each layer's dW and db";

#[test]
fn the_fused_feed_forward_is_the_composition_bit_for_bit() {
    // Odd sizes (no kernel sees only whole tiles), and rows the bf16 kernel reads in place.
    for (n, d, ffn) in [(67, 45, 70), (50, 64, 256)] {
        for precision in precisions() {
            for (bias, res) in [(true, Res::Input), (false, Res::Other), (true, Res::None)] {
                let op = |fused: bool| {
                    move |_: &Dev,
                          layer: &dyn Fn(usize, usize, u64) -> Linear,
                          x: &Matrix,
                          other: &Matrix| {
                        let mut up = layer(ffn, d, 10);
                        let mut down = layer(d, ffn, 20);
                        if !bias {
                            (up.bias, down.bias) = (None, None);
                        }
                        let rx = if res == Res::Other { other } else { x };
                        let mut rng = stream(5, "residual");
                        let y = match (fused, res) {
                            (true, Res::None) => {
                                fused::feed_forward(x.leaky_trace(), &up, &down, None, None)
                            }
                            (true, _) => {
                                let r = Residual {
                                    x: rx,
                                    p: 0.25,
                                    rows: None,
                                };
                                fused::feed_forward(
                                    x.leaky_trace(),
                                    &up,
                                    &down,
                                    Some(r),
                                    Some(&mut rng),
                                )
                            }
                            (false, Res::None) => feed_forward_unfused(x.leaky_trace(), &up, &down),
                            (false, _) => {
                                let h = feed_forward_unfused(x.leaky_trace(), &up, &down);
                                fused::residual_dropout(h, rx, 0.25, Some(&mut rng))
                            }
                        };
                        (y, vec![up, down], res == Res::Other)
                    }
                };
                let want = run((n, d), precision, 3, op(false));
                let got = [1, 3].map(|t| run((n, d), precision, t, op(true)));
                let what = format!(
                    "feed-forward {:?} {precision:?} bias {bias} {res:?}",
                    (n, d, ffn)
                );
                assert_same(&what, &got, &want);
            }
        }
    }
}

#[test]
fn the_fused_attention_sublayer_is_the_composition_bit_for_bit() {
    // (batch, seq, heads, head width): odd sizes, and rows the bf16 kernel reads in place.
    for (b, s, a, d) in [(3, 7, 2, 4), (2, 16, 2, 32)] {
        let h = a * d;
        for precision in precisions() {
            let cases = [
                (true, vec![], 0.25, Res::Input),
                (false, vec![0.5, 0.125], 0.0, Res::Other),
            ];
            for (bias, slopes, p, res) in cases {
                let op = |fused: bool| {
                    let slopes = slopes.clone();
                    move |dev: &Dev,
                          layer: &dyn Fn(usize, usize, u64) -> Linear,
                          x: &Matrix,
                          other: &Matrix| {
                        let mut l = [10, 20, 30, 40].map(|seed| layer(h, h, seed));
                        if !bias {
                            for l in &mut l {
                                l.bias = None;
                            }
                        }
                        let [q, k, v, out] = l;
                        let attn = Attention {
                            q,
                            k,
                            v,
                            out,
                            heads: a,
                            dropout: p,
                        };
                        // Sequence 1 ends in padding.
                        let mut m = vec![0.0f32; b * s];
                        m[s + s / 2..2 * s].fill(-10_000.0);
                        let mut rng = stream(4, "drop");
                        let mut pass = Pass {
                            batch: b,
                            seq: s,
                            mode: Mode::Train(&mut rng),
                            real: Arc::new(m.iter().map(|&v| v == 0.0).collect()),
                            bias: ScoreBias {
                                padding: dev.tensor_from_vec(m, (b, s)),
                                slopes: slopes.clone(),
                            },
                        };
                        let r = Residual {
                            x: if res == Res::Other { other } else { x },
                            p: 0.2,
                            rows: None,
                        };
                        let y = match fused {
                            true => attn.forward(x.leaky_trace(), r, &mut pass, None),
                            false => {
                                let y = attn.forward_composed(x.leaky_trace(), &mut pass);
                                let rng = pass.mode.reborrow().dropout_rng();
                                fused::residual_dropout(y, r.x, r.p, rng)
                            }
                        };
                        let Attention { q, k, v, out, .. } = attn;
                        (y, vec![q, k, v, out], res == Res::Other)
                    }
                };
                let want = run((b * s, h), precision, 3, op(false));
                let got = [1, 3].map(|t| run((b * s, h), precision, t, op(true)));
                let what = format!(
                    "attention {:?} {precision:?} bias {bias} p {p} {res:?}",
                    (b, s, a, d)
                );
                assert_same(&what, &got, &want);
            }
        }
    }
}

/// The MLM decoder and its loss as one op (`fused::linear_cross_entropy`) against
/// `fused::linear` then `fused::cross_entropy`: the loss, the hit count and the gradients of
/// the input, weight and bias, bit for bit, in both precisions, with and without a bias, on 1
/// and 3 threads.
#[test]
fn the_fused_decoder_loss_is_the_composition_bit_for_bit() {
    // More rows than a block (`ROWS` = 32), odd widths, labels everywhere in the vocabulary.
    let (n, d, vocab) = (75, 40, 301);
    let labels: Vec<usize> = (0..n).map(|i| (i * 97 + 13) % vocab).collect();
    for precision in precisions() {
        for bias in [true, false] {
            let run = |fused: bool, threads: usize| {
                common::pool(threads).install(|| {
                    let _products = autocast(precision);
                    let dev = Dev::seed_from_u64(0);
                    let x: Matrix = dev.tensor_from_vec(random(n * d, 50, 2.0), (n, d));
                    let w: Matrix = dev.tensor_from_vec(random(vocab * d, 51, 0.5), (vocab, d));
                    let b = dev.tensor_from_vec(random(vocab, 52, 0.5), (vocab,));
                    let b = bias.then_some(&b);
                    let (loss, correct) = if fused {
                        fused::linear_cross_entropy(x.leaky_trace(), &w, b, &labels)
                    } else {
                        fused::cross_entropy(fused::linear(x.leaky_trace(), &w, b), &labels)
                    };
                    let value = loss.array().to_bits();
                    let g = (loss * 1.7).backward();
                    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let mut out = vec![vec![value, correct as u32]];
                    out.push(bits(g.get(&x).as_vec()));
                    out.push(bits(g.get(&w).as_vec()));
                    if let Some(b) = b {
                        out.push(bits(g.get(b).as_vec()));
                    }
                    out
                })
            };
            let want = run(false, 3);
            assert!(want[1].iter().any(|&b| b != 0), "dx is all zeros");
            for threads in [1, 3] {
                let got = run(true, threads);
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g == w,
                        "{precision:?}, bias {bias}, {threads} threads: entry {i} of \
                         [loss and hits, dx, dW, db] differs"
                    );
                }
            }
        }
    }
}
