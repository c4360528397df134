//! Next sentence prediction (BERT): is segment B the text that follows A (label 0) or a
//! segment from another document (label 1)?

use super::sentence_pair::PairHead;
use super::{Ctx, Loss, Objective, ObjectiveFor};
use crate::model::params::named_params;
use crate::model::Act;
use crate::model::Taped;

#[derive(Clone, Debug)]
pub struct Nsp(pub PairHead);

impl<T: Taped> ObjectiveFor<T> for Nsp {
    fn loss(&self, hidden: Act<T>, view2: Option<Act<T>>, ctx: &Ctx) -> Loss<T> {
        self.0.loss(hidden, view2, ctx)
    }
}

impl Objective for Nsp {
    fn name(&self) -> &'static str {
        "nsp"
    }
    fn box_clone(&self) -> Box<dyn Objective> {
        Box::new(self.clone())
    }
    fn rows(&self, _: &crate::data::Batch, inputs: &crate::model::Inputs) -> Option<Vec<usize>> {
        Some(super::cls_rows(inputs))
    }
}

named_params!(Nsp { 0 => "" });
