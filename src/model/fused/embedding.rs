//! The embedding sum `word[ids] + position[positions] + token_type[types]` as one op. dfdx
//! builds it from gathers and adds that walk every element through generic index arithmetic
//! on the calling thread, forward and backward — work only the step's thread did while the
//! pool's other threads waited (`perf` by thread, session 21). Here the rows are summed in
//! parallel, and backward adds each token's gradient row into each table's gradient.
//!
//! Bit-identical to dfdx's composition: the rows are added in the tables' order (`(word +
//! position) + type`), and each element of a table's gradient receives its tokens'
//! contributions in token order, as dfdx's gather backward adds them; the tables' rows are
//! split between threads, never the tokens of one row, so the thread count changes nothing.

use crate::model::host::{accumulate, add_to_rows, take_output_grad, Values};
use crate::model::{Act, Dev, Matrix};
use dfdx::prelude::*;
use rayon::prelude::*;

/// `Σ_k tables[k].0[tables[k].1[r]]` for every token `r`, as rows `(N, H)`, in the order of
/// `tables`; every index list has `N` entries, each below its table's row count.
pub fn embed<T: Tape<f32, Dev>>(mut tape: T, dev: &Dev, tables: &[(&Matrix, &[usize])]) -> Act<T> {
    let h = tables[0].0.shape().1;
    let n = tables[0].1.len();
    let values: Vec<Values> = tables.iter().map(|(t, _)| Values::of(*t)).collect();
    // The threads see host values and indices only (a CUDA build's tensors are not `Sync`).
    let indices: Vec<&[usize]> = tables.iter().map(|(_, idx)| *idx).collect();
    let mut y = vec![0.0; n * h];
    y.par_chunks_mut(h * super::ROWS)
        .enumerate()
        .for_each(|(blk, rows)| {
            for (i, row) in rows.chunks_exact_mut(h).enumerate() {
                let r = blk * super::ROWS + i;
                for (k, (idx, table)) in indices.iter().zip(&values).enumerate() {
                    let src = &table[idx[r] * h..][..h];
                    if k == 0 {
                        row.copy_from_slice(src);
                    } else {
                        row.iter_mut().zip(src).for_each(|(y, x)| *y += x);
                    }
                }
            }
        });
    let out: Act<NoneTape> = dev.tensor_from_vec(y, (n, h));
    let out_ghost = out.ghost();
    let grads_of: Vec<_> = tables
        .iter()
        .map(|(t, idx)| (t.ghost(), idx.to_vec()))
        .collect();
    tape.add_backward_op(move |grads| {
        for (ghost, _) in &grads_of {
            grads.try_alloc_for(ghost)?;
        }
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        for (ghost, idx) in &grads_of {
            accumulate(grads.get_or_alloc_mut(ghost)?, |d| {
                add_to_rows(d, &g, idx, h)
            })?;
        }
        Ok(())
    });
    out.put_tape(tape)
}
