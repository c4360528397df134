//! Matrix products over strided views of host slices: in f32 through the `gemm` crate (its
//! AVX-512 kernels where the CPU has them), in bf16 mixed precision through `gemm_bf16`. The
//! views are bounds-checked here, once, so the fused ops that call these never touch a raw
//! pointer.

use crate::model::precision::Precision;

/// Element `(i, j)` of the view is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A `(rows, cols)` matrix at `offset` with row stride `rs` and unit column stride.
    pub fn new(data: &'a [f32], offset: usize, (rows, cols): (usize, usize), rs: usize) -> Self {
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
pub fn matmul(
    dst: &mut [f32],
    offset: usize,
    rs: usize,
    a: View,
    b: View,
    beta: f32,
    into: Into,
    parallel: bool,
    precision: Precision,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    View::new(dst, offset, (m, n), rs).check(dst.len());
    a.check(a.data.len());
    b.check(b.data.len());
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 && super::gemm_bf16::native() {
        return super::gemm_bf16::matmul(dst, offset, rs, a, b, beta, into, parallel);
    }
    let _ = precision;
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every view was bounds-checked above for its full extent; `dst` is borrowed
    // mutably and the inputs immutably, so nothing aliases.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(offset),
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
