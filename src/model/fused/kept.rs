//! A matrix an op keeps for the products that read it (`Kept`): a tensor's values read in
//! place, an op's own vector, or those values rounded to bf16 once, when more than one bf16
//! product reads it (a linear layer's input: its forward product and its weight's gradient) —
//! the packing then copies words instead of converting floats again, with the same bits.

use super::gemm::{bf16_here, fresh, Operand, View};
use crate::model::host::Values;
use crate::model::precision::Precision;

/// A matrix an op keeps for the products that read it: f32 values, or (for bf16 products on
/// a CPU that has them) the values rounded to bf16 once — half the memory, and every later
/// product reads the rounded bits instead of rounding again.
pub enum Kept {
    F32(Values),
    Bf16(Vec<u16>),
}

impl Kept {
    /// `values` in the form `precision`'s products read: a tensor's (`Values::of`, read in
    /// place) or an op's own vector.
    pub fn new(values: impl std::convert::Into<Values>, precision: Precision) -> Self {
        let values = values.into();
        #[cfg(target_arch = "x86_64")]
        if bf16_here(precision) {
            return Self::Bf16(super::gemm_bf16::round_all(&values));
        }
        let _ = precision;
        Self::F32(values)
    }

    /// `u = bias + a b` (`onto_bias`), then values made from it chunk by chunk over rayon's
    /// threads — `make(start, out, side)` writes all of `out` (the values from index
    /// `start`) and may change the same range of `u` (`side`) — and held as `precision`'s
    /// products read them; with `u` as the maker left it. With bf16 products `make` runs on
    /// each row segment of a tile as the kernel finishes it (at most 32 values), and what it
    /// makes is rounded there, while in cache: `u` is written once and never read back, and
    /// the f32 values never exist whole (the feed-forward's GELU on its `(N, ffn)`
    /// pre-activation).
    ///
    /// In f32 the bias joins each chunk in the pass that runs `make`, after the product,
    /// instead of being written out as rows for the product to add its sums to: one write and
    /// one read of `u` fewer (the large shape's `(4096, 2048)` per layer; `benches/ab.sh`
    /// ×1.00–1.07 there, median 1.03). The values are `onto_bias`'s wherever `gemm` sums the
    /// product in one k block — every product with `a.cols ≤ 512` (`gemm` cuts k only past
    /// 512), since `s + b` and `b + s` are the same float; a wider one's bias is added
    /// after its last block's sum instead of before the first's.
    pub fn made_from_product(
        a: Operand,
        b: Operand,
        bias: Option<&[f32]>,
        precision: Precision,
        make: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
    ) -> (Vec<f32>, Self) {
        #[cfg(target_arch = "x86_64")]
        if bf16_here(precision) {
            a.check();
            b.check();
            let (u, bits) = super::gemm_bf16::made_from_product(a, b, bias, make);
            return (u, Self::Bf16(bits));
        }
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 12;
        if let Some(bias) = bias {
            assert_eq!(bias.len(), b.dims().1, "bias against the product's columns");
        }
        let mut u = fresh(a, b, precision);
        // Each chunk is made in a buffer on the stack and copied into the values, which are
        // never filled first (what the bf16 path does per tile).
        let mut values = Vec::with_capacity(u.len());
        values.spare_capacity_mut()[..u.len()]
            .par_chunks_mut(CHUNK)
            .zip(u.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, (out, side))| {
                let mut made = [0.0f32; CHUNK];
                let made = &mut made[..out.len()];
                if let Some(bias) = bias {
                    add_rows(side, bias, i * CHUNK);
                }
                make(i * CHUNK, made, side);
                for (o, v) in out.iter_mut().zip(made.iter()) {
                    o.write(*v);
                }
            });
        // SAFETY: every chunk of the `u.len()` values was written above.
        unsafe { values.set_len(u.len()) };
        (u, Self::F32(values.into()))
    }

    /// `values` held as `precision`'s products read them, after `visit(start, block)` has seen
    /// (and may have changed in place) each block of `block` values, `start` being its first
    /// index; with what each visit returned, in block order. With bf16 products each block is
    /// rounded right after its visit, while it is in cache: a pass over memory saved against
    /// visiting, then `new`.
    pub fn visited<R: Send>(
        mut values: Vec<f32>,
        block: usize,
        precision: Precision,
        visit: impl Fn(usize, &mut [f32]) -> R + Sync,
    ) -> (Self, Vec<R>) {
        #[cfg(target_arch = "x86_64")]
        if bf16_here(precision) {
            let (bits, seen) = super::gemm_bf16::round_visited(&mut values, block, visit);
            return (Self::Bf16(bits), seen);
        }
        let _ = precision;
        use rayon::prelude::*;
        let seen = values
            .par_chunks_mut(block)
            .enumerate()
            .map(|(i, b)| visit(i * block, b))
            .collect();
        (Self::F32(values.into()), seen)
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `(rows, cols)` matrix at `offset` with row stride `rs`.
    pub fn view(&self, offset: usize, shape: (usize, usize), rs: usize) -> Operand<'_> {
        match self {
            Self::F32(v) => View::new(v, offset, shape, rs).into(),
            Self::Bf16(v) => View::new(v, offset, shape, rs).into(),
        }
    }
}

/// `values[i] += row[(start + i) % row.len()]`: the rows of a matrix that starts at index
/// `start` get `row` added, segment by segment.
fn add_rows(values: &mut [f32], row: &[f32], start: usize) {
    let mut col = start % row.len();
    let mut rest = values;
    while !rest.is_empty() {
        let (segment, tail) = rest.split_at_mut((row.len() - col).min(rest.len()));
        for (v, b) in segment.iter_mut().zip(&row[col..]) {
            *v += *b;
        }
        (rest, col) = (tail, 0);
    }
}
