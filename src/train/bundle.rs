//! Everything a pretraining run optimises: the encoder and the objectives' heads, under one
//! set of stable names (`encoder…`, `heads.<objective>…`).

use crate::config::Experiment;
use crate::model::params::RunningState;
use crate::model::{Dev, Encoder, Param, ParamMut, Params};
use crate::objectives::{registry, HeadDims, Objective};
use crate::rng::stream;

#[derive(Clone)]
pub struct Bundle {
    pub encoder: Encoder,
    /// `(weight, objective)` in the order of the experiment file.
    pub objectives: Vec<(f64, Box<dyn Objective>)>,
}

impl Bundle {
    /// Initialises from the run's seed (`model.init` stream); objectives are already validated.
    pub fn new(dev: &Dev, cfg: &Experiment, vocab: usize) -> Self {
        let mut rng = stream(cfg.training.seed, "model.init");
        let encoder = Encoder::new(dev, &cfg.model, vocab, &mut rng);
        let dims = HeadDims::of(&cfg.model, vocab);
        let objectives = cfg
            .objectives
            .iter()
            .map(|spec| {
                let entry = registry::find(&spec.name)
                    .expect("objective names are validated with the experiment file");
                (
                    spec.weight,
                    (entry.build)(&spec.options, &dims, dev, &mut rng),
                )
            })
            .collect();
        Self {
            encoder,
            objectives,
        }
    }
}

impl Params for Bundle {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        self.encoder.visit(prefix, f);
        for (_, o) in &self.objectives {
            o.visit(
                &crate::model::params::join(prefix, &format!("heads.{}", o.name())),
                f,
            );
        }
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        self.encoder.visit_mut(prefix, f);
        for (_, o) in &mut self.objectives {
            let name = o.name();
            o.visit_mut(
                &crate::model::params::join(prefix, &format!("heads.{name}")),
                f,
            );
        }
    }
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        self.encoder.visit_state(prefix, f);
        for (_, o) in &self.objectives {
            o.visit_state(
                &crate::model::params::join(prefix, &format!("heads.{}", o.name())),
                f,
            );
        }
    }
}
