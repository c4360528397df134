//! pretext: a research harness for self-supervised language-model pretraining.
//!
//! The data flow and module boundaries are drawn in `../shared/DESIGN.md`; each module's doc
//! comment says what it holds and what it deliberately knows nothing about.

pub mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Zeroing = alloc::Zeroing;

pub mod batches;
pub mod bench;
pub mod config;
pub mod data;
pub mod experiment;
pub mod files;
pub mod finetune;
pub mod gradnorms;
pub mod grid;
pub mod hf;
pub mod init_source;
pub mod inspect;
pub mod model;
pub mod objectives;
pub mod pool;
pub mod predict;
pub mod report;
pub mod rng;
pub mod rundir;
mod simd;
pub mod sweep;
pub mod train;
