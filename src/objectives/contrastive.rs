//! SimCSE-style contrastive objective (Gao et al. 2021): each sequence goes through the shared
//! encoder twice with different dropout masks; the two pooled views are positives, the other
//! sequences of the batch are negatives; InfoNCE over cosine similarity / temperature.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContrastiveOptions {
    pub temperature: f64,
    /// `cls` (the [CLS] hidden state) or `mean` (mean over real tokens).
    pub pooling: Pooling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    Cls,
    Mean,
}

impl Default for ContrastiveOptions {
    fn default() -> Self {
        Self { temperature: 0.05, pooling: Pooling::Cls }
    }
}

impl ContrastiveOptions {
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature: expected > 0, got {}", self.temperature));
        }
        Ok(())
    }
}
