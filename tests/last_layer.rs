//! The last block computed only at the rows the objectives read (`Encoder::forward_rows`):
//! those rows are the whole pass's (up to the order of float sums), with the same dropout draws
//! and the stream left where the whole pass leaves it; the other rows are NaN; the gradients
//! equal the whole pass's; and training with it follows training without
//! (`training.dense_last_layer = true`) for every objective.

mod common;

use dfdx::prelude::*;
use pretext::config::{ModelConfig, NormKind, Positions, PowerNormConfig};
use pretext::model::ops::{keep_mask, keep_mask_rows};
use pretext::model::{Dev, Encoder, Inputs, Mode, Params};
use pretext::rng::stream;
use pretext::train::Trainer;
use rand::Rng;

const VOCAB: usize = 60;

fn encoder(norm: NormKind, positions: Positions) -> (Dev, Encoder, Inputs) {
    let cfg = ModelConfig {
        positions,
        layers: 2,
        hidden: 32,
        heads: 2,
        ffn: 64,
        max_positions: 16,
        dropout: 0.1,
        attention_dropout: 0.1,
        norm,
        powernorm: PowerNormConfig {
            warmup: 1_000_000,
            ..Default::default()
        },
        ..ModelConfig::default()
    };
    let dev = Dev::seed_from_u64(0);
    let enc = Encoder::new(&dev, &cfg, VOCAB, &mut stream(1, "model.init"));
    let (b, s) = (3, 16);
    let mut rng = stream(2, "ids");
    let ids: Vec<u32> = (0..b * s).map(|_| rng.gen_range(5..VOCAB as u32)).collect();
    let types: Vec<u32> = (0..b * s).map(|i| ((i % s) >= s / 2) as u32).collect();
    // The second sequence ends in padding.
    let mask: Vec<f32> = (0..b * s)
        .map(|i| if i / s == 1 && i % s >= 11 { 0.0 } else { 1.0 })
        .collect();
    let inp = enc.inputs(b, s, &ids, &types, &mask).unwrap();
    (dev, enc, inp)
}

/// Rows of three sequences, a [CLS] and the last row among them.
const ROWS: [usize; 7] = [0, 5, 9, 16, 17, 30, 47];
/// Rows of the first and last sequences only: the second's keys and values have no query.
const SKIPPING: [usize; 4] = [0, 5, 40, 47];

#[test]
fn some_rows_of_the_keep_mask_are_those_rows_of_the_whole_one() {
    let (width, total, p) = (24, 10, 0.3);
    let rows = [1, 2, 7, 9];
    let (mut a, mut b) = (stream(4, "drop"), stream(4, "drop"));
    let whole = keep_mask(width * total, p, &mut a);
    let some = keep_mask_rows(&rows, width, total, p, &mut b);
    let want: Vec<f32> = rows
        .iter()
        .flat_map(|&r| whole[r * width..(r + 1) * width].to_vec())
        .collect();
    assert_eq!(some, want);
    assert!(want.contains(&0.0) && want.iter().any(|&k| k > 1.0));
    assert_eq!(
        a.gen::<u32>(),
        b.gen::<u32>(),
        "the stream moves past the whole mask"
    );
}

#[test]
fn the_rows_read_are_the_whole_passes_rows() {
    let cases = [
        (NormKind::PostLn, Positions::Learned, &ROWS[..]),
        (NormKind::PostLn, Positions::Alibi, &SKIPPING[..]),
        (NormKind::PreLn, Positions::Alibi, &ROWS[..]),
        (NormKind::PreLn, Positions::Learned, &SKIPPING[..]),
        (NormKind::Powernorm, Positions::Learned, &ROWS[..]),
    ];
    for (norm, positions, rows) in cases {
        let (dev, enc, inp) = encoder(norm, positions);
        let (mut a, mut b) = (stream(3, "model.dropout"), stream(3, "model.dropout"));
        let whole = enc.forward(&dev, &inp, NoneTape, Mode::Train(&mut a));
        let some = enc.forward_rows(&dev, &inp, NoneTape, Mode::Train(&mut b), Some(rows));
        let (whole, some) = (whole.as_vec(), some.as_vec());
        let h = enc.cfg.hidden;
        for (r, (w, s)) in whole.chunks(h).zip(some.chunks(h)).enumerate() {
            if norm == NormKind::Powernorm {
                // PowerNorm's batch statistics take every row: it computes them all.
                assert_eq!(w, s, "{norm:?}: row {r}");
            } else if rows.contains(&r) {
                // The products' kernels may sum in another order for fewer rows (a few ulp);
                // a dropout decision of its own would move a value by a tenth or more.
                for (x, y) in w.iter().zip(s) {
                    assert!(
                        (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                        "{norm:?}: row {r}"
                    );
                }
            } else {
                assert!(s.iter().all(|x| x.is_nan()), "{norm:?}: row {r} not NaN");
            }
        }
        assert_eq!(
            a.gen::<u64>(),
            b.gen::<u64>(),
            "{norm:?}: dropout streams part"
        );
    }
}

#[test]
fn gradients_through_some_rows_are_the_whole_passes() {
    let cases = [
        (NormKind::PostLn, Positions::Learned, &ROWS[..]),
        (NormKind::PreLn, Positions::Alibi, &SKIPPING[..]),
    ];
    for (norm, positions, read) in cases {
        let (dev, enc, inp) = encoder(norm, positions);
        let h = enc.cfg.hidden;
        let mut rng = stream(5, "probe");
        let r: Vec<f32> = (0..read.len() * h)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let grads = |rows: Option<&[usize]>| {
            let mut drop = stream(3, "model.dropout");
            let tape = OwnedTape::<f32, Dev>::default();
            let hidden = enc.forward_rows(&dev, &inp, tape, Mode::Train(&mut drop), rows);
            let idx = dev.tensor_from_vec(read.to_vec(), (read.len(),));
            let r = dev.tensor_from_vec(r.clone(), (read.len(), h));
            let mut g = (hidden.gather(idx) * r).sum::<Rank0, _>().backward();
            enc.named_params()
                .into_iter()
                .map(|(n, p)| (n, p.grad(&mut g)))
                .collect::<Vec<_>>()
        };
        let (whole, some) = (grads(None), grads(Some(read)));
        for ((name, w), (_, s)) in whole.iter().zip(&some) {
            let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
            if name.contains("layers.1.ffn") || name.contains("layers.1.attn.q") {
                assert!(scale > 1e-3, "{norm:?}: {name} has no gradient to compare");
            }
            for (x, y) in w.iter().zip(s) {
                assert!(
                    (x - y).abs() <= 1e-5 * scale + 1e-9,
                    "{norm:?}: {name}: {x} against {y}"
                );
            }
        }
    }
}

/// Documents of random words: enough text for a few batches of every objective.
fn corpus() -> pretext::data::Prepared {
    let mut rng = stream(6, "docs");
    let docs = (0..60)
        .map(|_| {
            (0..6)
                .map(|_| (0..8).map(|_| rng.gen_range(5..VOCAB as u32)).collect())
                .collect()
        })
        .collect();
    let mut data = common::prepared(VOCAB, docs, "last-layer");
    // Held-out batches from the same text: evaluation is computed at some rows too.
    data.heldout = data.train.clone();
    data
}

#[test]
fn training_with_the_last_block_at_some_rows_follows_training_without() {
    let data = corpus();
    let objectives = [
        "[[objectives]]\nname = \"mlm\"",
        "[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"sop\"",
        "[[objectives]]\nname = \"nsp\"",
        "[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"contrastive\"\nweight = 0.2",
        "[[objectives]]\nname = \"contrastive\"\noptions = { pooling = \"mean\" }",
        "[[objectives]]\nname = \"mlm\"\n[[objectives]]\nname = \"electra\"",
        "[[objectives]]\nname = \"electra\"\noptions = { generator_size = 0.5 }",
    ];
    for (i, objective) in objectives.iter().enumerate() {
        let losses = |dense: bool| {
            let text = format!(
                "name = \"rows\"\n[model]\nlayers = 2\nhidden = 32\nheads = 2\nffn = 64\n\
                 max_positions = 32\n{objective}\n[optimizer]\nlr = 3e-3\nwarmup_steps = 1\n\
                 [training]\nsteps = 6\nbatch_size = 8\nseq_len = 32\neval_every = 0\n\
                 checkpoint_every = 0\ndense_last_layer = {dense}\n"
            );
            let cfg = common::experiment(&text, "rows.toml");
            let mut t = Trainer::new(&cfg, &data).unwrap();
            let mut losses: Vec<f64> = (0..6)
                .map(|_| t.train_step().unwrap().0.total_loss)
                .collect();
            losses.push(t.evaluate().unwrap().expect("a held-out set").total_loss);
            losses
        };
        let (dense, some) = (losses(true), losses(false));
        for (a, b) in dense.iter().zip(&some) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs(),
                "variant {i}: {dense:?} against {some:?}"
            );
        }
        // Random words leave nothing to learn in six steps, but the weights must move, or the
        // two runs could agree by standing still.
        let moved = dense[..6].windows(2).all(|w| (w[0] - w[1]).abs() > 1e-4);
        assert!(moved, "variant {i}: the loss stands still: {dense:?}");
    }
}
