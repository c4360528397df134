//! Random inputs and the closeness check that the op-against-reference tests share.

use pretext::rng::stream;
use rand::Rng;

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
