//! Pretraining objectives, one file each, found by name through the registry.

pub mod contrastive;
pub mod registry;

pub use registry::{find, names, Needs};
