//! What changes over the course of a run besides the learning rate, each over the fraction of
//! the run spent (of its time budget, or of its steps).
//!
//! `[training.batch_ramp]`: a batch that grows from `start` sequences to
//! `training.batch_size` over the first `until` of the run, as Cramming (Geiping & Goldstein
//! 2022) ramps its batch. Early on, when the gradient is large and consistent, small batches
//! buy more optimiser steps for the same tokens; later, when the noise of a small batch
//! dominates, the full batch averages it out.
//!
//! `[training.short_phase]`: sequences of `seq_len` tokens for the first `until` of the run,
//! then `training.seq_len` — BERT's two phases (90 % of the steps at 128, the rest at 512)
//! and the sequence-length curriculum of the small-budget literature: short sequences cost
//! less attention per token, and the model learns local context first.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRamp {
    /// Sequences per micro-batch at the first step.
    pub start: usize,
    /// The fraction of the run, in (0, 1], by which the batch reaches `training.batch_size`.
    pub until: f64,
}

impl BatchRamp {
    /// The micro-batch size once `progress` (in [0, 1]) of the run is spent: linear from
    /// `start` to `full`, rounded to the nearest sequence.
    pub fn size_at(&self, progress: f64, full: usize) -> usize {
        let t = (progress / self.until).clamp(0.0, 1.0);
        let size = self.start as f64 + t * (full as f64 - self.start as f64);
        (size.round() as usize).clamp(self.start.min(full), full.max(self.start))
    }

    /// What is wrong with this ramp for a full batch of `full`, if anything.
    pub fn check(&self, full: usize) -> Result<(), String> {
        if self.start == 0 || self.start > full {
            return Err(format!(
                "start: expected 1 to training.batch_size ({full}) sequences, got {}",
                self.start
            ));
        }
        check_until(self.until)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortPhase {
    /// Tokens per sequence during the phase, below `training.seq_len`.
    pub seq_len: usize,
    /// The fraction of the run, in (0, 1], that the phase lasts.
    pub until: f64,
}

impl ShortPhase {
    /// Whether a step taken once `progress` of the run is spent belongs to the phase.
    pub fn active(&self, progress: f64) -> bool {
        progress < self.until
    }

    /// What is wrong with this phase for runs of `full`-token sequences, if anything.
    pub fn check(&self, full: usize) -> Result<(), String> {
        if self.seq_len < 8 || self.seq_len >= full {
            return Err(format!(
                "seq_len: expected 8 to training.seq_len − 1 ({}) tokens, got {}",
                full.saturating_sub(1),
                self.seq_len
            ));
        }
        check_until(self.until)
    }
}

fn check_until(until: f64) -> Result<(), String> {
    if !(until > 0.0 && until <= 1.0) {
        return Err(format!(
            "until: expected a fraction of the run in (0, 1], got {until}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_grows_linearly_to_the_full_size_and_stays_there() {
        let r = BatchRamp {
            start: 4,
            until: 0.5,
        };
        assert_eq!(r.size_at(0.0, 16), 4);
        assert_eq!(r.size_at(0.25, 16), 10);
        assert_eq!(r.size_at(0.5, 16), 16);
        assert_eq!(r.size_at(0.9, 16), 16);
        let sizes: Vec<usize> = (0..=100).map(|i| r.size_at(i as f64 / 100.0, 16)).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    }

    #[test]
    fn a_ramp_that_cannot_reach_the_batch_is_refused() {
        let bad = |start, until| BatchRamp { start, until }.check(16).unwrap_err();
        assert!(bad(0, 0.5).starts_with("start:"));
        assert!(bad(17, 0.5).starts_with("start:"));
        assert!(bad(4, 0.0).starts_with("until:"));
        assert!(bad(4, 1.5).starts_with("until:"));
        assert!(BatchRamp {
            start: 16,
            until: 1.0
        }
        .check(16)
        .is_ok());
    }

    #[test]
    fn a_short_phase_is_shorter_than_the_run_and_ends_on_time() {
        let p = ShortPhase {
            seq_len: 64,
            until: 0.5,
        };
        assert!(p.active(0.0) && p.active(0.49) && !p.active(0.5));
        assert!(p.check(128).is_ok());
        assert!(p.check(64).unwrap_err().starts_with("seq_len:"));
        let bad = ShortPhase {
            seq_len: 4,
            until: 2.0,
        };
        assert!(bad.check(128).unwrap_err().starts_with("seq_len:"));
        let late = ShortPhase {
            seq_len: 64,
            until: 0.0,
        };
        assert!(late.check(128).unwrap_err().starts_with("until:"));
    }
}
