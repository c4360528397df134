//! Downstream evaluation: GLUE classification and regression, SQuAD span extraction and STS
//! sentence embeddings, from a pretrained checkpoint or from scratch, fine-tuning everything or
//! probing a frozen encoder. Knows nothing about pretraining objectives: it reads a checkpoint's
//! encoder and the tokenizer, nothing else.

pub mod data;
pub mod embed;
pub mod glue;
pub mod head;
pub mod metrics;
pub mod plan;
pub mod run;
pub mod single;
pub mod squad;
pub mod task;

pub use run::{fit, jobs, prepare, run, FinetuneError, Fitted, Job, Outcome, Prepared, Source};
