//! The one training loop: AdamW + schedule, clipping, accumulation, evaluation, checkpoints
//! with exact resume, and logging. Knows objectives only through the registry's trait.

mod awake;
pub mod bundle;
pub mod checkpoint;
pub mod device_step;
mod error;
pub mod evaluation;
pub mod host_step;
pub mod log;
pub mod optimizer;
pub mod probe;
pub mod rescore;
pub mod run;
pub mod settings;
pub mod streams;
pub mod trainer;

pub use bundle::Bundle;
pub use run::{run, Options, Summary};
pub use trainer::{Metrics, TrainError, Trainer};
