//! `host::Values`: the fused ops read their inputs' buffers in place. What they read must be
//! the tensor's values in row-major order whatever the view, must not be a copy for a tensor
//! an op made, and must stay what it was when taken (a snapshot), even when the tensor is
//! written or dropped afterwards.

#![cfg(not(feature = "cuda"))]

use dfdx::prelude::*;
use pretext::model::host::Values;
use pretext::model::{Dev, Matrix};

fn matrix(dev: &Dev, rows: usize, cols: usize) -> Matrix {
    let v: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
    dev.tensor_from_vec(v, (rows, cols))
}

#[test]
fn values_are_row_major_for_every_view() {
    let dev = Dev::seed_from_u64(0);
    let t = matrix(&dev, 3, 5);
    assert_eq!(&*Values::of(&t), &t.as_vec()[..]);
    let permuted = t.clone().permute::<_, Axes2<1, 0>>();
    assert_eq!(&*Values::of(&permuted), &permuted.as_vec()[..]);
    assert_ne!(
        &*Values::of(&permuted),
        &t.as_vec()[..],
        "the view's own order"
    );
    let row: Tensor<(usize,), f32, Dev> = dev.tensor_from_vec(vec![1.0, 2.0, 3.0], (3,));
    let broadcast: Matrix = row.broadcast_like::<_, Axis<0>>(&(4, 3));
    assert_eq!(&*Values::of(&broadcast), &broadcast.as_vec()[..]);
    let taped: Tensor<_, f32, Dev, OwnedTape<f32, Dev>> = t.leaky_trace();
    assert_eq!(&*Values::of(&taped), &t.as_vec()[..]);
    let empty: Matrix = dev.tensor_from_vec(vec![], (0, 4));
    assert!(Values::of(&empty).is_empty());
}

#[test]
fn a_contiguous_tensor_is_read_in_place() {
    let dev = Dev::seed_from_u64(0);
    let t = matrix(&dev, 64, 33);
    let (a, b) = (Values::of(&t), Values::of(&t));
    assert_eq!(a.as_ptr(), b.as_ptr(), "both read the tensor's own buffer");
    let copy = Values::of(&t.clone().permute::<_, Axes2<1, 0>>());
    assert_ne!(a.as_ptr(), copy.as_ptr(), "a permuted view is copied");
}

#[test]
fn values_are_a_snapshot() {
    let dev = Dev::seed_from_u64(0);
    let mut t = matrix(&dev, 8, 8);
    let before = t.as_vec();
    let v = Values::of(&t);
    let new: Vec<f32> = before.iter().map(|x| x * -2.0 + 1.0).collect();
    t.copy_from(&new);
    assert_eq!(
        &*v,
        &before[..],
        "writing the tensor leaves the values taken before"
    );
    assert_eq!(t.as_vec(), new);
    drop(t);
    assert_eq!(&*v, &before[..], "the values outlive the tensor");
}
