//! The normalisation of a block, chosen by name in the experiment file.

use super::params::{Affine, Param, ParamMut, Params, RunningState};
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

impl Params for Norm {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        match self {
            Norm::Layer { affine, .. } => affine.visit(prefix, f),
            Norm::Power(p) => p.visit(prefix, f),
        }
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        match self {
            Norm::Layer { affine, .. } => affine.visit_mut(prefix, f),
            Norm::Power(p) => p.visit_mut(prefix, f),
        }
    }
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        if let Norm::Power(p) = self {
            p.visit_state(prefix, f);
        }
    }
}
