//! Matrix products over strided views of host slices: in f32 through the `gemm` crate (its
//! AVX-512 kernels where the CPU has them), in bf16 mixed precision through `gemm_bf16`. The
//! views are bounds-checked here, once, so the fused ops that call these never touch a raw
//! pointer.
//!
//! An operand may also be a matrix rounded to bf16 once (`Kept`, in `kept.rs`), when more
//! than one bf16 product reads it (a linear layer's input: its forward product and its
//! weight's gradient): the packing then copies words instead of converting floats again, and
//! the results are the same bits, since the packing would have rounded each value the same
//! way.

use crate::model::precision::Precision;
use std::mem::MaybeUninit;

pub use super::kept::Kept;

/// Element `(i, j)` of the view is `data[offset + i·rs + j·cs]`; `E` is `f32`, or `u16` for
/// bf16 bits.
#[derive(Clone, Copy)]
pub struct View<'a, E = f32> {
    pub data: &'a [E],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, E> View<'a, E> {
    /// A `(rows, cols)` matrix at `offset` with row stride `rs` and unit column stride.
    pub fn new(data: &'a [E], offset: usize, (rows, cols): (usize, usize), rs: usize) -> Self {
        Self {
            data,
            offset,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose: the same elements with the strides swapped.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The last element lies inside the slice: what makes the raw pointers below sound.
    fn check(&self, len: usize) {
        assert!(self.rows > 0 && self.cols > 0, "empty matrix view");
        let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
        assert!(last < len, "matrix view out of bounds");
    }
}

/// An operand of a product: f32 values, or bf16 bits that only bf16 products read.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    F32(View<'a>),
    Bf16(View<'a, u16>),
}

impl<'a> From<View<'a>> for Operand<'a> {
    fn from(v: View<'a>) -> Self {
        Self::F32(v)
    }
}

impl<'a> From<View<'a, u16>> for Operand<'a> {
    fn from(v: View<'a, u16>) -> Self {
        Self::Bf16(v)
    }
}

impl Operand<'_> {
    pub fn t(self) -> Self {
        match self {
            Self::F32(v) => Self::F32(v.t()),
            Self::Bf16(v) => Self::Bf16(v.t()),
        }
    }

    /// `(rows, cols, rs, cs)`.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        match self {
            Self::F32(v) => (v.rows, v.cols, v.rs, v.cs),
            Self::Bf16(v) => (v.rows, v.cols, v.rs, v.cs),
        }
    }

    /// Element `(r, c)`'s index in the operand's slice.
    pub fn at(&self, r: usize, c: usize) -> usize {
        let (offset, rs, cs) = match self {
            Self::F32(v) => (v.offset, v.rs, v.cs),
            Self::Bf16(v) => (v.offset, v.rs, v.cs),
        };
        offset + r * rs + c * cs
    }

    pub(super) fn check(&self) {
        match self {
            Self::F32(v) => v.check(v.data.len()),
            Self::Bf16(v) => v.check(v.data.len()),
        }
    }
}

/// Whether bf16 products run here: `precision` asks for them and the CPU has them.
pub(super) fn bf16_here(precision: Precision) -> bool {
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 && super::gemm_bf16::native() {
        return true;
    }
    let _ = precision;
    false
}

/// `bias + a b`, a fresh `(a.rows, b.cols)` matrix whose every row starts as `bias` (or is
/// the product alone): a layer's forward product. With bf16 products the bias is added as the
/// kernel stores each tile, so its rows are never written out first and read back.
pub fn onto_bias(a: Operand, b: Operand, bias: Option<&[f32]>, precision: Precision) -> Vec<f32> {
    let ((m, k, _, _), (k2, n, _, _)) = (a.dims(), b.dims());
    assert_eq!(k, k2, "inner dimensions");
    #[cfg(target_arch = "x86_64")]
    if bf16_here(precision) {
        use super::gemm_bf16::{product, Ends};
        a.check();
        b.check();
        let mut out = Vec::with_capacity(m * n);
        let ends = Ends { bias, finish: None };
        let dst = &mut out.spare_capacity_mut()[..m * n];
        product(dst, 0, n, a, b, 1.0, Into::Overwrite, ends, true);
        // SAFETY: an overwriting product writes every element of `dst`.
        unsafe { out.set_len(m * n) };
        return out;
    }
    let Some(bias) = bias else {
        return fresh(a, b, precision);
    };
    let mut out = rows_of(bias, m, n);
    matmul(&mut out, 0, n, a, b, 1.0, Into::Accumulate, true, precision);
    out
}

/// `rows` rows of `bias`, over rayon's threads without a fill first: on one thread
/// (`repeat`) the FFN's `(N, ffn)` rows kept the other cores waiting.
fn rows_of(bias: &[f32], rows: usize, width: usize) -> Vec<f32> {
    // SAFETY: every row of every block is written.
    unsafe {
        crate::model::host::written(rows * width, width * super::ROWS, |_, block| {
            for row in block.chunks_mut(width) {
                for (o, b) in row.iter_mut().zip(bias) {
                    o.write(*b);
                }
            }
        })
    }
}

/// Whether a product adds to what `dst` holds or overwrites it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Into {
    Overwrite,
    Accumulate,
}

/// `dst (+)= β · a b`, `dst` being the `(a.rows, b.cols)` matrix at `dst[offset..]` with row
/// stride `rs`; on rayon's threads when `parallel`, else on the calling one; with bf16
/// operands when `precision` says so and the CPU has the instructions.
#[allow(clippy::too_many_arguments)]
pub fn matmul<'a, 'b>(
    dst: &mut [f32],
    offset: usize,
    rs: usize,
    a: impl std::convert::Into<Operand<'a>>,
    b: impl std::convert::Into<Operand<'b>>,
    beta: f32,
    into: Into,
    parallel: bool,
    precision: Precision,
) {
    // SAFETY: f32 values are valid `MaybeUninit<f32>`s, and a product writes only f32 values.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    run(
        dst,
        offset,
        rs,
        a.into(),
        b.into(),
        beta,
        into,
        parallel,
        precision,
    )
}

/// `dst = β · a b` as `matmul` computes it, into values that may be uninitialised: an
/// overwriting product never reads them, so a fresh buffer need not be zero-filled first
/// (for the `(N, ffn)` and attention buffers that fill was a parallel pass over memory each).
#[allow(clippy::too_many_arguments)]
pub fn product_into<'a, 'b>(
    dst: &mut [MaybeUninit<f32>],
    offset: usize,
    rs: usize,
    a: impl std::convert::Into<Operand<'a>>,
    b: impl std::convert::Into<Operand<'b>>,
    beta: f32,
    parallel: bool,
    precision: Precision,
) {
    let (a, b) = (a.into(), b.into());
    run(
        dst,
        offset,
        rs,
        a,
        b,
        beta,
        Into::Overwrite,
        parallel,
        precision,
    )
}

/// `a b` as a new `(a.rows, b.cols)` matrix, over rayon's threads, never filled first.
pub fn fresh<'a, 'b>(
    a: impl std::convert::Into<Operand<'a>>,
    b: impl std::convert::Into<Operand<'b>>,
    precision: Precision,
) -> Vec<f32> {
    let (a, b) = (a.into(), b.into());
    let (m, n) = (a.dims().0, b.dims().1);
    let mut out = Vec::with_capacity(m * n);
    product_into(
        &mut out.spare_capacity_mut()[..m * n],
        0,
        n,
        a,
        b,
        1.0,
        true,
        precision,
    );
    // SAFETY: an overwriting product writes every element of its `(m, n)` destination.
    unsafe { out.set_len(m * n) };
    out
}

/// Both of the above; `dst` must be initialised when `into` is `Accumulate`.
#[allow(clippy::too_many_arguments)]
fn run(
    dst: &mut [MaybeUninit<f32>],
    offset: usize,
    rs: usize,
    a: Operand,
    b: Operand,
    beta: f32,
    into: Into,
    parallel: bool,
    precision: Precision,
) {
    let ((m, k, _, _), (k2, n, _, _)) = (a.dims(), b.dims());
    assert_eq!(k, k2, "inner dimensions");
    View::new(dst, offset, (m, n), rs).check(dst.len());
    a.check();
    b.check();
    #[cfg(target_arch = "x86_64")]
    if bf16_here(precision) {
        let ends = super::gemm_bf16::Ends::default();
        return super::gemm_bf16::product(dst, offset, rs, a, b, beta, into, ends, parallel);
    }
    let _ = precision;
    let (Operand::F32(a), Operand::F32(b)) = (a, b) else {
        panic!("a bf16 operand in an f32 product (`Kept::new` rounds only for bf16 products)")
    };
    let threads = rayon::current_num_threads();
    if parallel && threads > 1 && m >= SPLIT_ROWS * threads {
        // One block of rows per thread, each a whole product on its thread (see `SPLIT_ROWS`).
        use rayon::prelude::*;
        let per = m.div_ceil(threads);
        let dst = &mut dst[offset..offset + (m - 1) * rs + n];
        dst.par_chunks_mut(per * rs).enumerate().for_each(|(i, d)| {
            let r0 = i * per;
            let a = View {
                offset: a.offset + r0 * a.rs,
                rows: per.min(m - r0),
                ..a
            };
            f32_product(d, 0, rs, a, b, beta, into, gemm::Parallelism::None);
        });
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    f32_product(dst, offset, rs, a, b, beta, into, parallelism);
}

/// Rows of the product per thread from which an f32 product splits its rows between the
/// threads itself, each block a single-threaded `gemm` call, instead of asking `gemm` for
/// its own parallel loop. That loop joins the threads after every (column block, k block)
/// step of a product and gives each an equal share of the step's tiles; on 2 threads the
/// second one waited at those joins for 5–11 % of each product in a step (`perf`, session
/// 28). Each block packs B itself (the weights, small beside A here). The sums are the same:
/// `gemm`'s k blocking depends on k alone, and each element is summed over k in that order
/// whichever block, and whichever edge kernel, computes it.
const SPLIT_ROWS: usize = 64;

/// The `gemm` crate's product on views `run` checked.
#[allow(clippy::too_many_arguments)]
fn f32_product(
    dst: &mut [MaybeUninit<f32>],
    offset: usize,
    rs: usize,
    a: View,
    b: View,
    beta: f32,
    into: Into,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // SAFETY: every view was bounds-checked above for its full extent; `dst` is borrowed
    // mutably and the inputs immutably, so nothing aliases; `dst` is read only when
    // accumulating, which the callers do on initialised values alone.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(offset).cast::<f32>(),
            1,
            rs as isize,
            into == Into::Accumulate,
            a.data.as_ptr().add(a.offset),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.offset),
            b.cs as isize,
            b.rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}
