//! One Transformer block, with its norms placed after the residual add (post-LN, PowerNorm)
//! or before each sublayer (pre-LN).

use super::attention::Attention;
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
        let x = self.sublayer(x, pass, &self.attn_norm, |h, pass| {
            self.attn.forward(h, pass)
        });
        self.sublayer(x, pass, &self.ffn_norm, |h, _| {
            feed_forward(h, &self.ffn_up, &self.ffn_down)
        })
    }

    /// `norm(x + drop(f(x)))` (post) or `x + drop(f(norm(x)))` (pre).
    fn sublayer<T: Tape<f32, Dev>>(
        &self,
        x: Act<T>,
        pass: &mut Pass,
        norm: &Norm,
        f: impl FnOnce(Act<T>, &mut Pass) -> Act<T>,
    ) -> Act<T> {
        let (x, tape) = x.split_tape();
        let inp = x.clone().put_tape(tape);
        if self.pre_norm {
            let h = norm.forward(inp, pass);
            let h = f(h, pass);
            residual(h, &x, self.dropout, pass)
        } else {
            let h = f(inp, pass);
            let h = residual(h, &x, self.dropout, pass);
            norm.forward(h, pass)
        }
    }
}

/// `x + drop(h)`: fused on the CPU, dfdx's ops on CUDA.
fn residual<T: Tape<f32, Dev>>(h: Act<T>, x: &Act<NoneTape>, p: f32, pass: &mut Pass) -> Act<T> {
    #[cfg(not(feature = "cuda"))]
    return super::fused::residual_dropout(h, x, p, pass.mode.reborrow().dropout_rng());
    #[cfg(feature = "cuda")]
    {
        super::ops::dropout(h, p, pass.mode.reborrow().dropout_rng()) + x.clone()
    }
}

named_params!(Block {
    attn => "attn",
    attn_norm => "attn_norm",
    ffn_up => "ffn.up",
    ffn_down => "ffn.down",
    ffn_norm => "ffn_norm",
});
