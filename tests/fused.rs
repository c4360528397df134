//! Issue 7: each fused op against dfdx's unfused composition of the same maths — outputs and
//! the gradients of every input and parameter — and bit-identical results whatever the
//! number of threads.

mod common;

use common::values::{assert_close, assert_same_loss, random, rows};
use dfdx::prelude::*;
use pretext::model::attention::{alibi_slopes, core_unfused, ScoreBias};
use pretext::model::fused::{
    add_bias, attention, cross_entropy, layer_norm, linear, residual_dropout,
};
use pretext::model::gelu::gelu;
use pretext::model::params::Affine;
use pretext::model::{Dev, Matrix, Vector};
use pretext::rng::stream;
use rand::Rng;

#[test]
fn add_bias_matches_dfdx() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (77, 24);
    let x: Matrix = dev.tensor_from_vec(rows(n, c, 1), (n, c));
    let b: Vector = dev.tensor_from_vec(random(c, 2, 1.0), (c,));
    let r: Matrix = dev.tensor_from_vec(random(n * c, 3, 1.0), (n, c));

    let y_ref = x.leaky_trace() + b.clone().broadcast_like::<_, Axis<0>>(&(n, c));
    let out_ref = y_ref.as_vec();
    let g_ref = (y_ref * r.clone()).sum::<Rank0, _>().backward();
    let y = add_bias(x.leaky_trace(), &b);
    let out = y.as_vec();
    let g = (y * r).sum::<Rank0, _>().backward();

    assert_close("output", &out, &out_ref, 1e-6);
    assert_close("dx", &g.get(&x).as_vec(), &g_ref.get(&x).as_vec(), 1e-6);
    assert_close("db", &g.get(&b).as_vec(), &g_ref.get(&b).as_vec(), 1e-5);
}

#[test]
fn linear_matches_dfdx() {
    let dev = Dev::seed_from_u64(0);
    // Odd sizes, so no kernel sees only multiples of its tile.
    let (n, d_in, d_out) = (67, 45, 29);
    let x: Matrix = dev.tensor_from_vec(rows(n, d_in, 30), (n, d_in));
    let w: Matrix = dev.tensor_from_vec(random(d_out * d_in, 31, 0.5), (d_out, d_in));
    let b: Vector = dev.tensor_from_vec(random(d_out, 32, 1.0), (d_out,));
    let r: Matrix = dev.tensor_from_vec(random(n * d_out, 33, 1.0), (n, d_out));
    let run = |fused: bool, bias: Option<&Vector>| {
        let y = if fused {
            linear(x.leaky_trace(), &w, bias)
        } else {
            pretext::model::ops::project_unfused(x.leaky_trace(), &w, bias)
        };
        let out = y.as_vec();
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        (
            out,
            g.get(&x).as_vec(),
            g.get(&w).as_vec(),
            bias.map(|b| g.get(b).as_vec()),
        )
    };
    let (got, want) = (run(true, Some(&b)), run(false, Some(&b)));
    assert_close("output", &got.0, &want.0, 1e-5);
    assert_close("dx", &got.1, &want.1, 1e-5);
    assert_close("dW", &got.2, &want.2, 1e-5);
    assert_close("db", &got.3.unwrap(), &want.3.unwrap(), 1e-5);
    // Without a bias (`model.linear_bias = false`): the same products, no bias gradient.
    let (got, want) = (run(true, None), run(false, None));
    assert_close("output without bias", &got.0, &want.0, 1e-5);
    assert_close("dx without bias", &got.1, &want.1, 1e-5);
    assert_close("dW without bias", &got.2, &want.2, 1e-5);
}

/// A permuted view (what mean pooling hands the classifier) is read in its logical order, and
/// its gradient goes back to the tensor it views.
#[test]
fn fused_ops_take_views() {
    let dev = Dev::seed_from_u64(0);
    let (n, d_in, d_out) = (9, 12, 5);
    let xt: Matrix = dev.tensor_from_vec(rows(d_in, n, 34), (d_in, n));
    let w: Matrix = dev.tensor_from_vec(random(d_out * d_in, 35, 0.5), (d_out, d_in));
    let b: Vector = dev.tensor_from_vec(random(d_out, 36, 1.0), (d_out,));
    let r: Matrix = dev.tensor_from_vec(random(n * d_out, 37, 1.0), (n, d_out));
    let run = |fused: bool| {
        let view = xt.leaky_trace().permute::<_, Axes2<1, 0>>();
        let y = if fused {
            gelu(linear(view, &w, Some(&b)))
        } else {
            gelu(pretext::model::ops::project_unfused(view, &w, Some(&b)))
        };
        let out = y.as_vec();
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        (out, g.get(&xt).as_vec(), g.get(&w).as_vec())
    };
    let (got, want) = (run(true), run(false));
    assert_close("output", &got.0, &want.0, 1e-5);
    assert_close("d(viewed tensor)", &got.1, &want.1, 1e-5);
    assert_close("dW", &got.2, &want.2, 1e-5);
}

#[test]
fn layer_norm_matches_dfdx() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (70, 48);
    let x: Matrix = dev.tensor_from_vec(rows(n, c, 4), (n, c));
    let a = Affine {
        weight: dev.tensor_from_vec(random(c, 5, 1.0).iter().map(|v| 1.0 + v).collect(), (c,)),
        bias: dev.tensor_from_vec(random(c, 6, 0.5), (c,)),
    };
    let r: Matrix = dev.tensor_from_vec(random(n * c, 7, 1.0), (n, c));
    let eps = 1e-5;

    let y_ref = pretext::model::ops::layer_norm_unfused(x.leaky_trace(), &a, eps);
    let out_ref = y_ref.as_vec();
    let g_ref = (y_ref * r.clone()).sum::<Rank0, _>().backward();
    let y = layer_norm(x.leaky_trace(), &a, eps);
    let out = y.as_vec();
    let g = (y * r).sum::<Rank0, _>().backward();

    assert_close("output", &out, &out_ref, 1e-5);
    assert_close("dx", &g.get(&x).as_vec(), &g_ref.get(&x).as_vec(), 1e-4);
    assert_close(
        "dgamma",
        &g.get(&a.weight).as_vec(),
        &g_ref.get(&a.weight).as_vec(),
        1e-4,
    );
    assert_close(
        "dbeta",
        &g.get(&a.bias).as_vec(),
        &g_ref.get(&a.bias).as_vec(),
        1e-5,
    );
}

/// With and without ALiBi's distance penalty (`model.positions = "alibi"`).
#[test]
fn attention_matches_dfdx_with_padding_and_dropout() {
    let dev = Dev::seed_from_u64(0);
    let (b, s, a, d) = (3, 7, 2, 4);
    let (n, h) = (b * s, a * d);
    let q: Matrix = dev.tensor_from_vec(random(n * h, 20, 1.5), (n, h));
    let k: Matrix = dev.tensor_from_vec(random(n * h, 21, 1.5), (n, h));
    let v: Matrix = dev.tensor_from_vec(random(n * h, 22, 1.0), (n, h));
    let r: Matrix = dev.tensor_from_vec(random(n * h, 23, 1.0), (n, h));
    // Sequence 1 has three padded keys, sequence 2 one.
    let mut m = vec![0.0f32; b * s];
    m[s + 4..2 * s].fill(-10_000.0);
    m[3 * s - 1] = -10_000.0;
    let mask: Matrix = dev.tensor_from_vec(m, (b, s));
    for slopes in [vec![], vec![0.5, 0.125]] {
        let bias = ScoreBias {
            padding: mask.clone(),
            slopes: slopes.clone(),
        };
        for p in [0.0f32, 0.25] {
            let run = |fused: bool| {
                let mut rng = stream(4, "drop");
                let (qt, kt, vt) = (q.leaky_trace(), k.leaky_trace(), v.leaky_trace());
                let y = if fused {
                    attention(qt, kt, vt, (b, s, a), &bias, p, Some(&mut rng))
                } else {
                    core_unfused(qt, kt, vt, (b, s, a), &bias, p, Some(&mut rng))
                };
                let out = y.as_vec();
                let g = (y * r.clone()).sum::<Rank0, _>().backward();
                (
                    out,
                    g.get(&q).as_vec(),
                    g.get(&k).as_vec(),
                    g.get(&v).as_vec(),
                )
            };
            let (got, want) = (run(true), run(false));
            let what = format!("slopes {slopes:?} p={p}");
            assert_close(&format!("{what} context"), &got.0, &want.0, 1e-5);
            assert_close(&format!("{what} dq"), &got.1, &want.1, 1e-5);
            assert_close(&format!("{what} dk"), &got.2, &want.2, 1e-5);
            assert_close(&format!("{what} dv"), &got.3, &want.3, 1e-5);
        }
        // A padded key changes nothing: move its value vector and the context stays.
        let ctx = |v: &Matrix| {
            attention(q.clone(), k.clone(), v.clone(), (b, s, a), &bias, 0.0, None).as_vec()
        };
        let mut moved = v.as_vec();
        for x in &mut moved[(s + 5) * h..(s + 6) * h] {
            *x += 100.0;
        }
        let moved: Matrix = dev.tensor_from_vec(moved, (n, h));
        assert_close("padded key", &ctx(&moved), &ctx(&v), 1e-6);
    }
}

/// ALiBi from its definition: with all scores equal (Q = 0), query `i` of head `h` weighs
/// key `j` by `exp(−slope_h·|i−j|)`, normalised; with the values set to the key's index, the
/// context is that weighted mean of indices.
#[test]
fn alibi_weighs_keys_by_distance() {
    assert_eq!(alibi_slopes(4), vec![0.25, 0.0625, 0.015625, 0.00390625]);
    assert_eq!(alibi_slopes(8)[0], 0.5);
    assert_eq!(alibi_slopes(8)[7], 1.0 / 256.0);
    // Not a power of two: the four of 4 heads, then every other one of 8 heads' (the paper's).
    let six = alibi_slopes(6);
    assert_eq!(&six[..4], &alibi_slopes(4)[..]);
    assert_eq!(&six[4..], &[0.5, 0.125]);
    let dev = Dev::seed_from_u64(0);
    let (b, s, a, d) = (1, 5, 2, 1);
    let (n, h) = (b * s, a * d);
    let zeros: Matrix = dev.tensor_from_vec(vec![0.0; n * h], (n, h));
    let index: Matrix =
        dev.tensor_from_vec((0..s).flat_map(|j| [j as f32, j as f32]).collect(), (n, h));
    let bias = ScoreBias {
        padding: dev.tensor_from_vec(vec![0.0; b * s], (b, s)),
        slopes: vec![1.0, 0.25],
    };
    let ctx = attention(zeros.clone(), zeros, index, (b, s, a), &bias, 0.0, None).as_vec();
    for i in 0..s {
        for (hd, slope) in [1.0f64, 0.25].into_iter().enumerate() {
            let w: Vec<f64> = (0..s)
                .map(|j| (-slope * (i as f64 - j as f64).abs()).exp())
                .collect();
            let want = w.iter().enumerate().map(|(j, w)| j as f64 * w).sum::<f64>()
                / w.iter().sum::<f64>();
            let got = ctx[i * h + hd] as f64;
            assert!(
                (got - want).abs() < 1e-5,
                "query {i} head {hd}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn residual_dropout_matches_dfdx() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (40, 16);
    let h: Matrix = dev.tensor_from_vec(rows(n, c, 14), (n, c));
    let x: Matrix = dev.tensor_from_vec(rows(n, c, 15), (n, c));
    let r: Matrix = dev.tensor_from_vec(random(n * c, 16, 1.0), (n, c));
    for p in [0.0f32, 0.3] {
        let mut rng = stream(5, "drop");
        let y_ref = pretext::model::ops::dropout_unfused(h.leaky_trace(), p, &mut rng) + x.clone();
        let out_ref = y_ref.as_vec();
        let g_ref = (y_ref * r.clone()).sum::<Rank0, _>().backward();
        let mut rng = stream(5, "drop");
        // The tape rides on h, as in a block; x's gradient must still arrive.
        let (hx, tape) = h.leaky_trace().split_tape();
        let x_traced = x.clone();
        let y = residual_dropout(hx.put_tape(tape), &x_traced, p, Some(&mut rng));
        let out = y.as_vec();
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        assert_close(&format!("p={p} output"), &out, &out_ref, 1e-6);
        assert_close(
            &format!("p={p} dh"),
            &g.get(&h).as_vec(),
            &g_ref.get(&h).as_vec(),
            1e-6,
        );
        assert_close(&format!("p={p} dx"), &g.get(&x).as_vec(), &r.as_vec(), 1e-6);
    }
}

/// The fused dropout (the embeddings') is dfdx's product with the mask tensor bit for bit,
/// forward and backward, on more elements than one parallel chunk.
#[test]
fn dropout_matches_dfdx() {
    use pretext::model::ops::{dropout, dropout_unfused};
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (700, 48);
    let x: Matrix = dev.tensor_from_vec(rows(n, c, 17), (n, c));
    let r: Matrix = dev.tensor_from_vec(random(n * c, 18, 1.0), (n, c));
    let bits = |t: &Matrix| t.as_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for p in [0.1f32, 0.5] {
        let y_ref = dropout_unfused(x.leaky_trace(), p, &mut stream(6, "drop"));
        let out_ref: Matrix = y_ref.retaped();
        let g_ref = (y_ref * r.clone()).sum::<Rank0, _>().backward();
        let y = dropout(x.leaky_trace(), p, Some(&mut stream(6, "drop")));
        let out: Matrix = y.retaped();
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        assert_eq!(bits(&out), bits(&out_ref), "p={p} output");
        assert_eq!(bits(&g.get(&x)), bits(&g_ref.get(&x)), "p={p} dx");
        assert!(out.as_vec().contains(&0.0), "p={p}: nothing dropped");
    }
}

#[test]
fn cross_entropy_matches_dfdx() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (45, 300);
    let x: Matrix = dev.tensor_from_vec(rows(n, c, 17), (n, c));
    let labels: Vec<usize> = (0..n).map(|i| (i * 37) % c).collect();
    let mut onehot = vec![0.0f32; n * c];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * c + l] = 1.0;
    }
    let target: Matrix = dev.tensor_from_vec(onehot, (n, c));
    let loss_ref = cross_entropy_with_logits_loss(x.leaky_trace(), target);
    let (loss, correct) = cross_entropy(x.leaky_trace(), &labels);
    assert_same_loss(&x, loss_ref, loss);
    let xv = x.as_vec();
    let hits = xv
        .chunks_exact(c)
        .zip(&labels)
        .filter(|(row, &l)| row.iter().all(|&v| v <= row[l]))
        .count();
    assert_eq!(correct, hits);
    // Labels at the argmax are all counted.
    let argmax: Vec<usize> = xv
        .chunks_exact(c)
        .map(|row| (0..c).fold(0, |b, i| if row[i] > row[b] { i } else { b }))
        .collect();
    assert_eq!(cross_entropy(x.clone(), &argmax).1, n);
}

/// The fused ops sum over rows in fixed blocks: one thread and four give the same bits.
#[test]
fn fused_gradients_do_not_depend_on_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let dev = Dev::seed_from_u64(0);
            let (n, c) = (1000, 64);
            let x: Matrix = dev.tensor_from_vec(rows(n, c, 10), (n, c));
            let a = Affine {
                weight: dev.tensor_from_vec(random(c, 11, 1.0), (c,)),
                bias: dev.tensor_from_vec(random(c, 12, 1.0), (c,)),
            };
            let r: Matrix = dev.tensor_from_vec(random(n * c, 13, 1.0), (n, c));
            let y = add_bias(layer_norm(x.leaky_trace(), &a, 1e-5), &a.bias);
            let g = (y * r).sum::<Rank0, _>().backward();
            (
                g.get(&x).as_vec(),
                g.get(&a.weight).as_vec(),
                g.get(&a.bias).as_vec(),
            )
        })
    };
    assert!(run(1) == run(4));
}

/// The dropout mask drawn in parallel blocks equals the sequential draw, and leaves the stream
/// where the sequential draw leaves it.
#[test]
fn parallel_keep_mask_is_the_sequential_one() {
    use pretext::model::ops::{keep_mask, keep_mask_sequential};
    let rates = [0.1, 0.5, 1.0 / 3.0, 0.9, 1e-7, 0.0];
    for (len, p) in [0, 1, 1000, 1025, (1 << 16) + 3, 3 * (1 << 16)]
        .into_iter()
        .flat_map(|len| rates.map(|p| (len, p)))
    {
        let (mut a, mut b) = (stream(9, "drop"), stream(9, "drop"));
        let _: u32 = a.gen();
        let _: u32 = b.gen();
        assert_eq!(
            keep_mask(len, p, &mut a),
            keep_mask_sequential(len, p, &mut b),
            "{len} elements, p = {p}"
        );
        assert_eq!(
            a.gen::<u64>(),
            b.gen::<u64>(),
            "stream position after {len}"
        );
    }
    let m = keep_mask(100_000, 0.1, &mut stream(1, "drop"));
    let dropped = m.iter().filter(|&&v| v == 0.0).count();
    assert!((9_500..10_500).contains(&dropped), "{dropped} dropped");
}
