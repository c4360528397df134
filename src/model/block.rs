//! One Transformer block, with its norms placed after the residual add (post-LN, PowerNorm)
//! or before each sublayer (pre-LN).

use super::attention::Attention;
use super::fused::{Residual, Subset};
use super::norm::Norm;
use super::ops::feed_forward;
use super::params::Linear;
use super::{Act, Dev, Pass};
use crate::config::{ModelConfig, NormKind};
use crate::model::params::named_params;
use crate::rng::Rng;
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct Block {
    pub attn: Attention,
    pub attn_norm: Norm,
    pub ffn_up: Linear,
    pub ffn_down: Linear,
    pub ffn_norm: Norm,
    pub pre_norm: bool,
    pub dropout: f32,
}

impl Block {
    pub fn new(dev: &Dev, cfg: &ModelConfig, rng: &mut Rng) -> Self {
        let std = cfg.init_std;
        Self {
            attn: Attention::new(dev, cfg, rng),
            attn_norm: Norm::for_block(dev, cfg),
            ffn_up: Linear::with_bias(dev, cfg.hidden, cfg.ffn, std, cfg.linear_bias, rng),
            ffn_down: Linear::with_bias(dev, cfg.ffn, cfg.hidden, std, cfg.linear_bias, rng),
            ffn_norm: Norm::for_block(dev, cfg),
            pre_norm: cfg.norm == NormKind::PreLn,
            dropout: cfg.dropout,
        }
    }

    /// The block on token rows `(B·S, H)`. With `rows` (sorted token rows), only those rows
    /// query the attention (its keys and values are still every token), and the output holds
    /// only them: the last block, when the objectives read some rows only
    /// (`Encoder::forward_rows`). Row-wise norms only: PowerNorm's batch statistics would
    /// change.
    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        pass: &mut Pass,
        rows: Option<&[usize]>,
    ) -> Act<T> {
        let subset = rows.map(|rows| Subset {
            rows,
            total: x.shape().0,
        });
        let x = self.sublayer(x, pass, &self.attn_norm, subset, |h, r, pass| {
            self.attn.forward(h, r, pass, rows)
        });
        self.sublayer(x, pass, &self.ffn_norm, subset, |h, r, pass| {
            let rng = pass.mode.reborrow().dropout_rng();
            feed_forward(h, &self.ffn_up, &self.ffn_down, r, rng)
        })
    }

    /// `norm(x + drop(f(x)))` (post) or `x + drop(f(norm(x)))` (pre): `f` takes the residual
    /// connection (`x` and the dropout) into its op and returns `x + drop(f(·))`. `rows`: which
    /// rows of the whole the sublayer's output holds, when only some (`Residual::rows`).
    fn sublayer<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        pass: &mut Pass,
        norm: &Norm,
        rows: Option<Subset>,
        f: impl FnOnce(Act<T>, Residual, &mut Pass) -> Act<T>,
    ) -> Act<T> {
        let (x, tape) = x.split_tape();
        let inp = x.clone().put_tape(tape);
        let r = Residual {
            x: &x,
            p: self.dropout,
            rows,
        };
        if self.pre_norm {
            let h = norm.forward(inp, pass);
            f(h, r, pass)
        } else {
            let h = f(inp, r, pass);
            norm.forward(h, pass)
        }
    }
}

named_params!(Block {
    attn => "attn",
    attn_norm => "attn_norm",
    ffn_up => "ffn.up",
    ffn_down => "ffn.down",
    ffn_norm => "ffn_norm",
});
