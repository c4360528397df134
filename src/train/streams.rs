//! The training batches of a run: one stream of `training.seq_len`-token sequences and, with
//! `training.short_phase`, a second of shorter ones that serves the first part of the run.
//! Each stream keeps its own position, so a checkpoint taken in either phase resumes exactly.
//!
//! The short stream draws from the corpus with its own sampler (`data.train.short`), and the
//! long one starts its first epoch when the phase ends: with a corpus larger than the run, the
//! two phases see mostly different text; with a small one, the second phase repeats some.

use crate::config::{Experiment, ShortPhase};
use crate::data::{Batch, BatchStream, NoInstances, Prepared, StreamSettings, StreamState};

pub struct Streams {
    long: BatchStream,
    short: Option<(BatchStream, ShortPhase)>,
}

impl Streams {
    /// The run's streams over `prepared`'s training corpus, with `settings` at the full length.
    pub fn new(
        cfg: &Experiment,
        prepared: &Prepared,
        settings: StreamSettings,
    ) -> Result<Self, NoInstances> {
        let open = |settings: StreamSettings, name: &str| {
            BatchStream::new(
                prepared.train.clone(),
                prepared.tokenizer.clone(),
                settings,
                cfg.training.seed,
                name,
            )
        };
        let short = match &cfg.training.short_phase {
            Some(phase) => {
                let settings = StreamSettings {
                    seq_len: phase.seq_len,
                    ..settings.clone()
                };
                Some((open(settings, "data.train.short")?, phase.clone()))
            }
            None => None,
        };
        Ok(Self {
            long: open(settings, "data.train")?,
            short,
        })
    }

    /// The next batch of `size` sequences for a step taken once `progress` of the run is spent.
    pub fn next_batch(&mut self, size: usize, progress: f64) -> Result<Batch, NoInstances> {
        match &mut self.short {
            Some((stream, phase)) if phase.active(progress) => stream.next_batch(size),
            _ => self.long.next_batch(size),
        }
    }

    /// The positions of the full-length stream and of the short one, if any.
    pub fn state(&self) -> (StreamState, Option<StreamState>) {
        (
            self.long.state(),
            self.short.as_ref().map(|(s, _)| s.state()),
        )
    }

    /// Continues from saved positions. A checkpoint from before the short phase existed has
    /// no short position: its run had no short phase, which the settings check already saw.
    pub fn restore(
        &mut self,
        long: StreamState,
        short: Option<StreamState>,
    ) -> Result<(), NoInstances> {
        self.long.restore(long)?;
        if let (Some((stream, _)), Some(state)) = (&mut self.short, short) {
            stream.restore(state)?;
        }
        Ok(())
    }
}
