//! The held-out evaluation set every variant of an experiment is scored on.
//!
//! A comparison of variants is fair only if they answer the same questions. So the held-out
//! batches are fixed by the held-out documents, the tokenizer, `training.seq_len` and
//! `training.eval_batches` alone — never by a variant's seed, objectives or masking options:
//! one batch list per *layout* (what an objective reads: masked single segments for MLM,
//! NSP pairs, SOP pairs, plain single segments for the contrastive objective), drawn with one
//! fixed seed and BERT's standard masking (15 %, 80/10/10). An MLM-only run and an MLM+SOP run
//! are therefore scored on the same token ids and the same masked positions. A CRC-32 over
//! every batch is the set's fingerprint: runs record it, and the report refuses to put runs
//! with different fingerprints in one table without saying so. `Trainer::evaluate` scores a
//! run on it, and `Trainer::probes` fits the pair probes on its NSP/SOP batches.

use super::error::TrainError;
use super::trainer::{accumulate, accumulate_parts, inputs_of, Metrics, Trainer};
use crate::data::{Batch, BatchStream, MaskingConfig, PairMode, StreamSettings};
use crate::data::{DataError, Prepared};
use crate::model::Mode;
use crate::objectives::{registry, Ctx, Objective, ObjectiveFor};
use dfdx::prelude::{AsArray, NoneTape};

/// The seed of the evaluation set's sampler and masker: the same for every run.
pub const EVAL_SEED: u64 = 20_191_011;
/// Sequences per held-out batch, whatever `training.batch_size` a variant trains with.
pub const EVAL_BATCH: usize = 32;

/// What an objective reads from a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// MLM-masked inputs with their labels.
    pub masked: bool,
    /// Two segments with this pair task's labels; `None`: one segment.
    pub pair: Option<PairMode>,
}

impl Layout {
    /// Every layout the registered objectives read, in a fixed order.
    pub const ALL: [Layout; 4] = [
        Layout {
            masked: true,
            pair: None,
        },
        Layout {
            masked: false,
            pair: Some(PairMode::Nsp),
        },
        Layout {
            masked: false,
            pair: Some(PairMode::Sop),
        },
        Layout {
            masked: false,
            pair: None,
        },
    ];

    /// The layout an objective with these needs is scored on.
    pub fn of(needs: &crate::objectives::registry::Needs) -> Self {
        Layout {
            masked: needs.mlm_labels,
            pair: needs.pair,
        }
    }

    /// A pair task's name in metric tags (`probe/nsp/accuracy`).
    pub fn task_name(task: PairMode) -> &'static str {
        match task {
            PairMode::Nsp => "nsp",
            PairMode::Sop => "sop",
            PairMode::Single => "single",
        }
    }

    fn name(&self) -> String {
        let pair = self.pair.map_or("single", Self::task_name);
        format!("{pair}{}", if self.masked { "-masked" } else { "" })
    }
}

/// The shared held-out batches of each layout, and their fingerprint.
pub struct EvalSet {
    sets: Vec<(Layout, Vec<Batch>)>,
    /// CRC-32 (hex) over the settings and every batch of every layout.
    pub fingerprint: String,
}

impl EvalSet {
    /// Draws `batches` batches of [`EVAL_BATCH`] sequences of `seq_len` tokens per layout from
    /// the held-out split; `None` when there is nothing to evaluate. A layout the held-out
    /// documents cannot fill (NSP needs two documents) is left out.
    pub fn build(
        prepared: &Prepared,
        seq_len: usize,
        batches: usize,
    ) -> Result<Option<Self>, DataError> {
        if prepared.heldout.is_empty() || batches == 0 {
            return Ok(None);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(
            format!("eval v1 seq_len={seq_len} batches={batches} batch={EVAL_BATCH}").as_bytes(),
        );
        let mut sets = Vec::new();
        for layout in Layout::ALL {
            let settings = StreamSettings {
                seq_len,
                short_seq_prob: 0.0,
                mode: layout.pair.unwrap_or(PairMode::Single),
                masking: layout.masked.then(MaskingConfig::default),
            };
            let name = format!("data.eval.{}", layout.name());
            let Ok(mut stream) = BatchStream::new(
                prepared.heldout.clone(),
                prepared.tokenizer.clone(),
                settings,
                EVAL_SEED,
                &name,
            ) else {
                continue;
            };
            let mut list = Vec::with_capacity(batches);
            for _ in 0..batches {
                let b = stream.next_batch(EVAL_BATCH)?;
                hash_batch(&mut crc, &layout.name(), &b);
                list.push(b);
            }
            sets.push((layout, list));
        }
        Ok(Some(Self {
            sets,
            fingerprint: format!("{:08x}", crc.finalize()),
        }))
    }

    /// The batches of `layout`, if the held-out split could fill it.
    pub fn batches(&self, layout: Layout) -> Option<&[Batch]> {
        self.sets
            .iter()
            .find(|(l, _)| *l == layout)
            .map(|(_, b)| b.as_slice())
    }
}

fn hash_batch(crc: &mut crc32fast::Hasher, layout: &str, b: &Batch) {
    crc.update(layout.as_bytes());
    for v in [
        &b.input_ids,
        &b.token_type_ids,
        &b.mlm_labels,
        &b.pair_labels,
    ] {
        crc.update(&(v.len() as u64).to_le_bytes());
        for x in v.iter() {
            crc.update(&x.to_le_bytes());
        }
    }
    for p in &b.mlm_positions {
        crc.update(&(*p as u64).to_le_bytes());
    }
    for m in &b.attention_mask {
        crc.update(&m.to_le_bytes());
    }
}

impl Trainer<'_> {
    /// The cross table of ALBERT's Table 5, for the pair tasks this run did not train: a
    /// linear probe's accuracy on the frozen [CLS] (`probe/<task>/accuracy`, see `probe`) and,
    /// when the run trained the other pair head, that head's accuracy on this task's held-out
    /// pairs (`transfer/<task>/accuracy`). The transfer is ALBERT's reading: its SOP model is
    /// scored on NSP with the head it was trained with — both tasks label a pair 0 when B
    /// follows A in the text, so one head answers both. NSP for an SOP run, SOP for an NSP
    /// run, both probes (no transfer) for the others.
    pub fn probes(&self) -> Result<Vec<(String, f64)>, TrainError> {
        let Some(set) = &self.eval_set else {
            return Ok(Vec::new());
        };
        let tasks: Vec<PairMode> = [PairMode::Nsp, PairMode::Sop]
            .into_iter()
            .filter(|t| self.needs.pair != Some(*t))
            .collect();
        let mut out = super::probe::pair_probes(
            &self.dev,
            &self.bundle.encoder,
            self.prepared,
            set,
            self.cfg.training.seq_len,
            &tasks,
        )?;
        out.extend(self.transfers(set, &tasks)?);
        Ok(out)
    }

    /// `transfer/<task>/accuracy`: the run's trained pair head on the held-out pairs of each
    /// of `tasks` (see `probes`).
    fn transfers(
        &self,
        set: &EvalSet,
        tasks: &[PairMode],
    ) -> Result<Vec<(String, f64)>, TrainError> {
        let _products = crate::model::precision::autocast(self.precision);
        let heads: Vec<_> = self
            .bundle
            .objectives
            .iter()
            .filter(|(_, o)| registry::find(o.name()).is_some_and(|e| e.needs.pair.is_some()))
            .collect();
        let mut out = Vec::new();
        for (_, head) in heads {
            for &task in tasks {
                let layout = Layout {
                    masked: false,
                    pair: Some(task),
                };
                let Some(batches) = set.batches(layout) else {
                    continue;
                };
                let (mut correct, mut total) = (0usize, 0usize);
                for batch in batches {
                    let loss = self.eval_pass(batch, [head.as_ref()], |hidden, ctx| {
                        ObjectiveFor::<NoneTape>::loss(head.as_ref(), hidden, None, ctx)
                    })?;
                    correct += loss.correct;
                    total += loss.total;
                }
                out.push((
                    format!("transfer/{}/accuracy", Layout::task_name(task)),
                    correct as f64 / total.max(1) as f64,
                ));
            }
        }
        Ok(out)
    }

    /// The encoder's hidden states of one held-out batch (evaluation mode: no dropout, no
    /// tape) handed to `f` with the context the objectives read; computed at the rows that
    /// `readers`, the objectives `f` scores, read (`Encoder::forward_rows`).
    fn eval_pass<'o, R>(
        &self,
        batch: &Batch,
        readers: impl IntoIterator<Item = &'o dyn Objective>,
        f: impl FnOnce(crate::model::Act<NoneTape>, &Ctx) -> R,
    ) -> Result<R, TrainError> {
        let enc = &self.bundle.encoder;
        let inputs = inputs_of(enc, batch)?;
        let rows = self.rows_read(readers, batch, &inputs);
        let hidden = enc.forward_rows(&self.dev, &inputs, NoneTape, Mode::Eval, rows.as_deref());
        let ctx = Ctx {
            dev: &self.dev,
            encoder: enc,
            batch,
            inputs: &inputs,
            rng: None,
        };
        Ok(f(hidden, &ctx))
    }

    /// Mean metrics over the shared held-out set: each objective on the batches of its layout
    /// (`evaluation`), the same batches for every variant of the experiment.
    pub fn evaluate(&self) -> Result<Option<Metrics>, TrainError> {
        let Some(set) = &self.eval_set else {
            return Ok(None);
        };
        let _products = crate::model::precision::autocast(self.precision);
        let mut metrics = Metrics::default();
        let mut scored = false;
        for layout in super::evaluation::Layout::ALL {
            let objectives: Vec<_> = self
                .bundle
                .objectives
                .iter()
                .filter(|(_, o)| {
                    registry::find(o.name())
                        .is_some_and(|e| super::evaluation::Layout::of(&e.needs) == layout)
                })
                .collect();
            let Some(batches) = set.batches(layout).filter(|_| !objectives.is_empty()) else {
                continue;
            };
            let n = batches.len();
            for batch in batches {
                let readers = objectives.iter().map(|(_, o)| o.as_ref());
                self.eval_pass(batch, readers, |hidden, ctx| {
                    for (weight, obj) in &objectives {
                        let loss =
                            ObjectiveFor::<NoneTape>::loss(obj.as_ref(), hidden.clone(), None, ctx);
                        accumulate(
                            &mut metrics,
                            obj.name(),
                            loss.value.array() as f64 / n as f64,
                            loss.correct,
                            loss.total,
                            *weight,
                        );
                        accumulate_parts(&mut metrics, obj.name(), &loss.parts, 1.0 / n as f64);
                        scored = true;
                    }
                })?;
            }
        }
        // Report objectives in the file's order, whatever order the layouts came in.
        let order: Vec<&str> = self
            .bundle
            .objectives
            .iter()
            .map(|(_, o)| o.name())
            .collect();
        metrics.per_objective.sort_by_key(|(n, ..)| {
            // A part (`electra/generator`) stays with its objective.
            let objective = n.split('/').next().unwrap_or(n);
            order.iter().position(|o| *o == objective)
        });
        Ok(scored.then_some(metrics))
    }
}
