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

use crate::model::io::{tensor_f32, WeightsError};
use safetensors::SafeTensors;
use std::path::Path;

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
