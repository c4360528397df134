//! Sentence order prediction (ALBERT, Lan et al. 2020): are two contiguous segments in their
//! order (label 0) or swapped (label 1)? Harder than NSP: topic alone cannot tell.

use super::sentence_pair::PairHead;
use super::{Ctx, Loss, Objective, ObjectiveFor};
use crate::model::params::named_params;
use crate::model::Act;
use crate::model::Taped;

#[derive(Clone, Debug)]
pub struct Sop(pub PairHead);

impl<T: Taped> ObjectiveFor<T> for Sop {
    fn loss(&self, hidden: Act<T>, view2: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        self.0.loss(hidden, view2, ctx)
    }
}

impl Objective for Sop {
    fn name(&self) -> &'static str {
        "sop"
    }
    fn box_clone(&self) -> Box<dyn Objective> {
        Box::new(self.clone())
    }
    fn rows(&self, _: &crate::data::Batch, inputs: &crate::model::Inputs) -> Option<Vec<usize>> {
        Some(super::cls_rows(inputs))
    }
}

named_params!(Sop { 0 => "" });
