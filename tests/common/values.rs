//! Random inputs and the closeness checks that the op-against-reference tests share.

use dfdx::prelude::*;
use pretext::model::{Dev, Matrix};
use pretext::rng::stream;
use rand::Rng;

/// A scalar loss traced from the logits under test.
pub type Loss = Tensor<Rank0, f32, Dev, OwnedTape<f32, Dev>>;

/// `n` values uniform in `(−scale, scale)` from stream `seed`.
pub fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = stream(seed, "fused-test");
    (0..n)
        .map(|_| scale * rng.gen_range(-1.0f32..1.0))
        .collect()
}

/// `a` and `b` agree within `tol` relative to `1 + |value|` everywhere, and `a` is not all
/// zeros (a comparison of nothing would pass).
pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs().max(y.abs())))
        .fold(0.0f32, f32::max);
    assert!(worst < tol, "{what}: worst relative difference {worst}");
    assert!(
        a.iter().any(|v| *v != 0.0),
        "{what}: all zeros, nothing compared"
    );
}

/// Rows that are not all alike: offsets and scales differ from row to row.
pub fn rows(n: usize, c: usize, seed: u64) -> Vec<f32> {
    let mut v = random(n * c, seed, 1.0);
    for (i, row) in v.chunks_exact_mut(c).enumerate() {
        for x in row {
            *x = *x * (1.0 + i as f32 * 0.3) + i as f32 * 0.1;
        }
    }
    v
}

/// Two losses of the logits `x` agree: `tested`'s value within 1e-5 of `reference`'s
/// (relative), and its gradient with respect to `x` (of 3 · loss, so that the scale of the
/// incoming gradient is exercised) within 1e-6.
pub fn assert_same_loss(x: &Matrix, reference: Loss, tested: Loss) {
    let v_ref = reference.array();
    let g_ref = (reference * 3.0).backward();
    let v = tested.array();
    let g = (tested * 3.0).backward();
    assert!((v - v_ref).abs() < 1e-5 * v_ref.abs(), "{v} vs {v_ref}");
    assert_close("dlogits", &g.get(x).as_vec(), &g_ref.get(x).as_vec(), 1e-6);
}
