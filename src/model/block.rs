//! One Transformer block, with its norms placed after the residual add (post-LN, PowerNorm)
//! or before each sublayer (pre-LN).

use super::attention::Attention;
use super::fused::Residual;
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

    pub fn forward<T: Tape<f32, Dev>>(&self, x: Act<T>, pass: &mut Pass) -> Act<T> {
        let x = self.sublayer(x, pass, &self.attn_norm, |h, r, pass| {
            self.attn.forward(h, r, pass)
        });
        self.sublayer(x, pass, &self.ffn_norm, |h, r, pass| {
            let rng = pass.mode.reborrow().dropout_rng();
            feed_forward(h, &self.ffn_up, &self.ffn_down, r, rng)
        })
    }

    /// `norm(x + drop(f(x)))` (post) or `x + drop(f(norm(x)))` (pre): `f` takes the residual
    /// connection (`x` and the dropout) into its op and returns `x + drop(f(·))`.
    fn sublayer<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        pass: &mut Pass,
        norm: &Norm,
        f: impl FnOnce(Act<T>, Residual, &mut Pass) -> Act<T>,
    ) -> Act<T> {
        let (x, tape) = x.split_tape();
        let inp = x.clone().put_tape(tape);
        let r = Residual {
            x: &x,
            p: self.dropout,
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
