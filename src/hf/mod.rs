//! HF transformers directories in and out. pretext's parameters already have PyTorch's
//! layouts, so both directions are renamings: `export` writes a run as the HF class that
//! computes what it computes, `import` reads such a directory (and HF's own) back. BERT's names
//! are the hub: `model::io::hf_name` gives them for the encoder, `export::hf_pretraining_name`
//! for the heads, and each other class is a translation from and to them, in a file of its own.
//!
//! | pretext run | HF class | translation |
//! |---|---|---|
//! | post-LN | `BertForPreTraining`, `BertForMaskedLM` | — |
//! | pre-LN | `RobertaPreLayerNormForMaskedLM` | `roberta_prelayernorm` |
//! | post-LN trained with `electra` | `ElectraForPreTraining`, `ElectraForMaskedLM` | `electra` |

pub mod electra;
pub mod export;
pub mod import;
pub mod roberta_prelayernorm;

use crate::config::NormKind;
use crate::model::io::{tensor_f32, WeightsError};
use safetensors::SafeTensors;
use std::path::Path;

/// The HF classes pretext writes and reads, by the `model_type` of their `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Bert,
    RobertaPreLayerNorm,
    Electra,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Bert, Class::RobertaPreLayerNorm, Class::Electra];

    pub fn model_type(self) -> &'static str {
        match self {
            Class::Bert => "bert",
            Class::RobertaPreLayerNorm => roberta_prelayernorm::MODEL_TYPE,
            Class::Electra => electra::MODEL_TYPE,
        }
    }

    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.model_type() == model_type)
    }

    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Class::Bert => "BERT",
            Class::RobertaPreLayerNorm => "RobertaPreLayerNorm",
            Class::Electra => "ELECTRA",
        }
    }

    /// The norm placement it computes.
    pub fn norm(self) -> NormKind {
        match self {
            Class::RobertaPreLayerNorm => NormKind::PreLn,
            Class::Bert | Class::Electra => NormKind::PostLn,
        }
    }
}

/// A tensor by name, shape and values.
pub type Named = (String, Vec<usize>, Vec<f32>);

/// The tensors of `st` that `rename` gives a name to, under that name, each checked (dtype,
/// finiteness) as `model::io` checks BERT's; what an HF class's file holds, read as BERT's.
pub fn read_renamed(
    st: &SafeTensors,
    file: &Path,
    rename: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Named>, WeightsError> {
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if let Some(new) = rename(&name) {
            out.push((new, view.shape().to_vec(), tensor_f32(file, &name, &view)?));
        }
    }
    Ok(out)
}
