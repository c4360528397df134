//! The head NSP and SOP share: the pooled [CLS] state → a 2-way classifier. The two
//! objectives differ only in how the sampler builds segment B (see `data::instances`).

use super::{cross_entropy, Ctx, HeadDims, Loss, ObjectiveFor};
use crate::model::ops::linear;
use crate::model::params::named_params;
use crate::model::params::Linear;
use crate::model::Taped;
use crate::model::{Act, Dev};
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct PairHead {
    pub classifier: Linear,
}

impl PairHead {
    pub fn new(dev: &Dev, d: &HeadDims, rng: &mut Rng) -> Self {
        Self {
            classifier: Linear::new(dev, d.hidden, 2, d.init_std, rng),
        }
    }
}

impl<T: Taped> ObjectiveFor<T> for PairHead {
    fn loss(&self, hidden: Act<T>, _: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        let pooled = ctx
            .encoder
            .pool(ctx.dev, hidden, ctx.inputs.batch, ctx.inputs.seq);
        let labels: Vec<usize> = ctx.batch.pair_labels.iter().map(|&l| l as usize).collect();
        cross_entropy(ctx.dev, linear(pooled, &self.classifier), &labels)
    }
}

named_params!(PairHead { classifier => "classifier" });
