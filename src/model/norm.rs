//! The normalisation of a block, chosen by name in the experiment file.

use super::params::{named_params, Affine};
use super::powernorm::PowerNorm;
use super::{ops, Act, Dev, Pass};
use crate::config::{ModelConfig, NormKind};
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub enum Norm {
    Layer { affine: Affine, eps: f32 },
    Power(PowerNorm),
}

impl Norm {
    /// The norm a block of `cfg` uses (PowerNorm replaces the LayerNorms of a post-LN block).
    pub fn for_block(dev: &Dev, cfg: &ModelConfig) -> Self {
        match cfg.norm {
            NormKind::PostLn | NormKind::PreLn => Norm::Layer {
                affine: Affine::new(dev, cfg.hidden),
                eps: cfg.layer_norm_eps,
            },
            NormKind::Powernorm => Norm::Power(PowerNorm::new(dev, cfg.hidden, &cfg.powernorm)),
        }
    }

    pub fn forward<T: Tape<f32, Dev>>(&self, x: Act<T>, pass: &mut Pass) -> Act<T> {
        match self {
            Norm::Layer { affine, eps } => ops::layer_norm(x, affine, *eps),
            Norm::Power(p) => p.forward(x, &pass.real, pass.mode.is_train()),
        }
    }
}

named_params!(enum Norm {
    Norm::Layer { affine, .. } => { affine => "" },
    Norm::Power(p) => { p => "" },
});
