//! The residual connection of a sublayer, `x + drop(h)`, in one op: dfdx would draw the mask
//! into a tensor, multiply, then add, each a pass with its own buffer.
//!
//! The keep mask is drawn exactly as `ops::dropout` draws it, so fusing changes no random draw.
//! Backward: `dx = g`, `dh = g ⊙ k`.

use crate::model::host::{
    accumulate, add_from_host, add_to_rows, copied, picked_rows, take_output_grad, DevError,
    GradBuf, Values,
};
use crate::model::ops::{keep_mask, keep_mask_rows};
use crate::model::{Act, Dev};
use crate::rng::Rng;
use dfdx::prelude::*;
use rayon::prelude::*;

/// `x + drop(h)` with dropout probability `p` when `rng` is given. The tape rides on `h`;
/// `x` is the sublayer's input, whose gradient the tape also collects.
pub fn residual_dropout<T: Tape<f32, Dev>>(
    h: Act<T>,
    x: &Act<NoneTape>,
    p: f32,
    rng: Option<&mut Rng>,
) -> Act<T> {
    let h = h.contiguous();
    let shape = *h.shape();
    let mut y = copied(&Values::of(&h));
    let keep = Residual { x, p, rows: None }.add(&mut y, rng).mask;
    let (h, mut tape) = h.split_tape();
    let out: Act<NoneTape> = h.device().tensor_from_vec(y, shape);
    let (h_ghost, x_ghost, out_ghost) = (h.ghost(), x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&h_ghost)?;
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        add_from_host(grads.get_or_alloc_mut(&x_ghost)?, &g)?;
        match &keep {
            Some(k) => accumulate(grads.get_or_alloc_mut(&h_ghost)?, |dh| {
                dh.par_iter_mut()
                    .zip(&g)
                    .zip(k)
                    .for_each(|((d, g), k)| *d += g * k)
            }),
            None => add_from_host(grads.get_or_alloc_mut(&h_ghost)?, &g),
        }
    });
    out.put_tape(tape)
}

/// A sublayer's residual connection taken into the sublayer's own op (`fused::feed_forward`,
/// `fused::self_attention`): the op returns `x + drop(y)` for its output `y`, with dropout `p`
/// drawn from the op's stream after the sublayer's own draws — what `residual_dropout` on the
/// op's output computes, bit for bit, without the output's dfdx tensor (a copy) and its zeroed
/// gradient in between.
pub struct Residual<'a> {
    pub x: &'a Act<NoneTape>,
    pub p: f32,
    /// Which rows of the whole `(total, width)` sublayer the op's output holds, when only
    /// some (`Encoder::forward_rows`): the dropout mask is those rows of the whole one
    /// (`ops::keep_mask_rows`), and `x` holds either the same rows or every row of the whole,
    /// of which the residual then adds those.
    pub rows: Option<Subset<'a>>,
}

/// Some rows of a `(total, ·)` activation, in the order an op holds them.
#[derive(Clone, Copy, Debug)]
pub struct Subset<'a> {
    pub rows: &'a [usize],
    pub total: usize,
}

/// What the backward pass needs of a residual: its keep mask (none without dropout), and the
/// rows of `x` the output held when `x` held more.
pub(super) struct Keep {
    mask: Option<Vec<f32>>,
    picked: Option<(Vec<usize>, usize)>,
}

impl Residual<'_> {
    /// `y ← x + drop(y)`, as `residual_dropout` computes it.
    pub(super) fn add(&self, y: &mut [f32], rng: Option<&mut Rng>) -> Keep {
        let (rows, width) = *self.x.shape();
        let mask = match rng {
            Some(rng) if self.p > 0.0 => Some(match self.rows {
                None => keep_mask(y.len(), self.p, rng),
                Some(s) => keep_mask_rows(s.rows, width, s.total, self.p, rng),
            }),
            _ => None,
        };
        let xv = Values::of(self.x);
        let picked = self
            .rows
            .filter(|s| rows == s.total && s.rows.len() != s.total);
        let xv: std::borrow::Cow<[f32]> = match picked {
            Some(s) => picked_rows(&xv, s.rows, width).into(),
            None => (&xv[..]).into(),
        };
        let xv: &[f32] = &xv;
        assert_eq!(
            xv.len(),
            y.len(),
            "residual: the input's rows against the output's"
        );
        match &mask {
            Some(k) => y
                .par_iter_mut()
                .zip(xv)
                .zip(k)
                .for_each(|((y, x), k)| *y = *y * k + x),
            None => y.par_iter_mut().zip(xv).for_each(|(y, x)| *y += x),
        }
        Keep {
            mask,
            picked: picked.map(|s| (s.rows.to_vec(), width)),
        }
    }
}

impl Keep {
    /// Adds the residual input's share of the gradient, `g` itself (at the rows it held).
    pub(super) fn to_input(&self, buf: &mut GradBuf, g: &[f32]) -> Result<(), DevError> {
        match &self.picked {
            None => add_from_host(buf, g),
            Some((rows, w)) => accumulate(buf, |dx| add_to_rows(dx, g, rows, *w)),
        }
    }

    /// The sublayer output's gradient from the residual's, `g ⊙ keep`, in place — as
    /// `residual_dropout`'s backward leaves it in a zeroed buffer (`0 + g·k`, so a −0 becomes
    /// +0 there too). The residual input's share, `g` itself, is the caller's to add first.
    pub(super) fn through(&self, mut g: Vec<f32>) -> Vec<f32> {
        match &self.mask {
            Some(k) => g.par_iter_mut().zip(k).for_each(|(g, k)| *g = 0.0 + *g * k),
            None => g.par_iter_mut().for_each(|g| *g += 0.0),
        }
        g
    }
}
