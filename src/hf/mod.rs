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
