//! Downstream evaluation: GLUE classification and regression, SQuAD span extraction and STS
//! sentence embeddings, from a pretrained checkpoint or from scratch, fine-tuning everything or
//! probing a frozen encoder. Knows nothing about pretraining objectives: it reads a checkpoint's
//! encoder and the tokenizer, nothing else.

pub mod data;
pub mod embed;
mod error;
pub mod glue;
pub mod head;
pub mod job;
pub mod metrics;
pub mod plan;
pub mod predictions;
pub mod run;
mod score;
pub mod single;
pub mod squad;
mod step;
pub mod task;

pub use job::{jobs, prepare, Job, Pairs, Prepared, Source};
pub use predictions::Predictions;
pub use run::{fit, run, FinetuneError, Fitted, Outcome};
