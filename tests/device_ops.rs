//! What the CUDA build computes with dfdx's generic ops in place of the host's fused ones
//! (dropout masks, cross-entropy, GELU), run here on the CPU against the fused ops: the two
//! builds must drop the same units and give the same losses and gradients, and CI has no GPU.

mod common;

use common::values::{assert_close, assert_same_loss, random, rows};
use dfdx::prelude::*;
use pretext::model::fused::cross_entropy;
use pretext::model::gelu::{gelu_device, gelu_host};
use pretext::model::ops::cross_entropy_device;
use pretext::model::{Dev, Matrix};
use pretext::rng::stream;

/// The CUDA build's masks: byte flags from the same stream, turned into f32 and scaled as its
/// device does it (dfdx's `to_dtype` and scalar product, here on the CPU), are `keep_mask`'s
/// values bit for bit, so GPU and CPU runs drop the same units.
#[test]
fn byte_flags_scaled_are_the_keep_mask() {
    use pretext::model::ops::{keep_mask, mask_of};
    for p in [0.1f32, 1.0 / 3.0, 0.5] {
        let len = 3 * (1 << 16) + 5;
        let want = keep_mask(len, p, &mut stream(4, "drop"));
        let flags = mask_of(len, p, &mut stream(4, "drop"), 0u8, 1u8);
        let dev = Dev::seed_from_u64(0);
        let t: Tensor<(usize,), u8, Dev> = dev.tensor_from_vec(flags, (len,));
        let got = (t.to_dtype::<f32>() * (1.0 / (1.0 - p))).as_vec();
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "p = {p}"
        );
    }
}

/// The CUDA build's cross-entropy (dfdx's log-softmax and select, which run on any device)
/// against the fused one: value, gradient and hit count, ties included.
#[test]
fn device_cross_entropy_matches_the_fused_one() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (45, 300);
    let mut xv = rows(n, c, 19);
    xv[3 * c + 7] = xv[3 * c..4 * c].iter().fold(f32::MIN, |a, &b| a.max(b));
    let x: Matrix = dev.tensor_from_vec(xv, (n, c));
    let mut labels: Vec<usize> = (0..n).map(|i| (i * 37) % c).collect();
    labels[3] = 7;
    let (loss_ref, hits_ref) = cross_entropy(x.leaky_trace(), &labels);
    let (loss, hits) = cross_entropy_device(x.leaky_trace(), &labels);
    assert_same_loss(&x, loss_ref, loss);
    assert_eq!(hits, hits_ref);
    assert!(hits >= 1, "the planted tie at row 3 is a hit");
}

/// The CUDA build's GELU (dfdx's `accurate_gelu` plus a zero-valued correction) against the
/// host one, value and input gradient — and dfdx's own derivative is off, so the correction
/// is needed.
#[test]
fn device_gelu_matches_the_host_one() {
    let dev = Dev::seed_from_u64(0);
    let (n, c) = (33, 40);
    let x: Matrix = dev.tensor_from_vec(random(n * c, 23, 4.0), (n, c));
    let r: Matrix = dev.tensor_from_vec(random(n * c, 24, 1.0), (n, c));
    let y_ref = gelu_host(x.leaky_trace());
    let out_ref = y_ref.as_vec();
    let g_ref = (y_ref * r.clone()).sum::<Rank0, _>().backward();
    let y = gelu_device(x.leaky_trace());
    assert_close("gelu", &y.as_vec(), &out_ref, 1e-6);
    let g = (y * r.clone()).sum::<Rank0, _>().backward();
    assert_close("dx", &g.get(&x).as_vec(), &g_ref.get(&x).as_vec(), 1e-6);
    let raw = (x.leaky_trace().accurate_gelu() * r)
        .sum::<Rank0, _>()
        .backward();
    let off = raw
        .get(&x)
        .as_vec()
        .iter()
        .zip(g_ref.get(&x).as_vec())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        off > 1e-2,
        "dfdx's accurate_gelu derivative now agrees ({off}): drop the correction"
    );
}
