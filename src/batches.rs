//! `pretext batches FILE --steps N --out F.safetensors`: the token ids one run of a grid trains
//! on, and the experiment's shared MLM evaluation set, as a safetensors file another
//! implementation can read (benches/hf_parity.py trains HF transformers' BERT on it).
//!
//! Why a file of token ids and not "the same text": sentence splitting, document boundaries,
//! the held-out split and BERT's packing of sentences into segments would each have to be
//! re-implemented exactly in the other framework, and any difference would show up as a
//! difference in the learning curve. With the ids shared, a comparison of learning curves
//! compares what it is meant to: initialisation, masking, model, optimizer and schedule.
//!
//! What is written:
//! - `train.input_ids` `[steps · batch_size, seq_len]` (u16 where the vocabulary fits, else
//!   i32) and `train.attention_mask` (u8): the run's training batches in order, *before*
//!   masking (the masker draws from its own random stream, so these are exactly the ids the
//!   run masks), plus `train.token_type_ids` and `train.pair_labels` when the run reads pairs;
//! - `eval.input_ids`, `eval.attention_mask` and `eval.labels` (i32, -100 where nothing is
//!   predicted, HF's convention): the shared held-out MLM batches, masked as every run sees
//!   them, [`EVAL_BATCH`] sequences per batch;
//! - metadata: the run's resolved settings (TOML), its variant, the special-token ids, the
//!   evaluation set's fingerprint and the batch sizes.

use crate::config::{LoadedExperiment, RunSpec};
use crate::data::{self, BatchStream, PairMode, StreamSettings};
use crate::objectives::registry;
use crate::train::evaluation::{EvalSet, Layout, EVAL_BATCH};
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Writes the first `steps` training batches of `variant` (the grid's first run when `None`)
/// and the shared MLM evaluation set to `out`.
pub fn write(
    file: &Path,
    variant: Option<&str>,
    steps: usize,
    runs_dir: &Path,
    out: &Path,
) -> Result<()> {
    let exp = LoadedExperiment::load(file)?;
    let spec = pick(&exp.runs, variant, file)?;
    let cfg = &spec.config;
    for (key, set) in [
        ("training.batch_ramp", cfg.training.batch_ramp.is_some()),
        ("training.short_phase", cfg.training.short_phase.is_some()),
    ] {
        if set {
            bail!(
                "{}: variant {}: {key} changes the batches' shape during the run, and the file \
                 holds batches of one shape; write a variant without it",
                file.display(),
                spec.variant
            );
        }
    }
    let base_dir = crate::grid::base_dir(file);
    let exp_dir = runs_dir.join(&exp.base.name);
    let corpus = data::sources::expand(&cfg.data.corpus, &base_dir)?;
    // Plain entries are relative to the experiment file, as the readers take them.
    let corpus: Vec<std::path::PathBuf> = corpus.iter().map(|c| base_dir.join(c)).collect();
    crate::rundir::refuse_overwriting_input(out, &corpus).map_err(anyhow::Error::msg)?;
    let prepared = data::prepare(&cfg.data, &cfg.tokenizer, &base_dir, Some(&exp_dir))?;
    let (seq_len, batch) = (cfg.training.seq_len, cfg.training.batch_size);
    let rows = steps
        .checked_mul(batch)
        .filter(|r| r.checked_mul(seq_len).is_some_and(|n| n <= 1 << 32))
        .with_context(|| format!("--steps {steps}: more than 2^32 token ids to write"))?;

    let needs = registry::combined_needs(cfg.objectives.iter().map(|o| o.name.as_str()));
    let mode = needs.pair.unwrap_or(PairMode::Single);
    let settings = StreamSettings {
        seq_len,
        short_seq_prob: cfg.training.short_seq_prob,
        mode,
        masking: None,
    };
    // The same stream name and seed as the run's sampler (train::Trainer::new).
    let mut stream = BatchStream::new(
        prepared.train.clone(),
        prepared.tokenizer.clone(),
        settings,
        cfg.training.seed,
        "data.train",
    )
    .map_err(data::DataError::from)?;
    let mut train = Columns::default();
    for _ in 0..steps {
        let b = stream.next_batch(batch)?;
        train.push(&b, false);
    }

    let set = EvalSet::build(&prepared, seq_len, cfg.training.eval_batches)?;
    let masked = Layout {
        masked: true,
        pair: None,
    };
    let Some((set, eval)) = set.as_ref().and_then(|s| Some((s, s.batches(masked)?))) else {
        bail!(
            "{}: no held-out MLM batches to write (data.heldout_fraction or \
             training.eval_batches is 0, or the held-out split is empty)",
            file.display()
        );
    };
    let mut held = Columns::default();
    for b in eval {
        held.push(b, true);
    }

    let vocab = prepared.tokenizer.vocab_size();
    let sp = prepared.tokenizer.special;
    let (n_train, n_eval) = (vec![rows, seq_len], vec![eval.len() * EVAL_BATCH, seq_len]);
    let mut tensors: Vec<(&str, Tensor)> = vec![
        ("train.input_ids", Tensor::ids(&train.ids, vocab, &n_train)),
        ("train.attention_mask", Tensor::u8(&train.mask, &n_train)),
        ("eval.input_ids", Tensor::ids(&held.ids, vocab, &n_eval)),
        ("eval.attention_mask", Tensor::u8(&held.mask, &n_eval)),
        ("eval.labels", Tensor::i32(&held.labels, &n_eval)),
    ];
    if mode != PairMode::Single {
        tensors.push(("train.token_type_ids", Tensor::u8(&train.types, &n_train)));
        tensors.push(("train.pair_labels", Tensor::i32(&train.pairs, &[rows])));
    }
    let metadata: HashMap<String, String> = [
        ("format", "pretext batches v1".to_string()),
        ("experiment", exp.base.name.clone()),
        ("variant", spec.variant.clone()),
        ("config", crate::train::settings::resolved_text(cfg)),
        ("steps", steps.to_string()),
        ("batch_size", batch.to_string()),
        ("seq_len", seq_len.to_string()),
        ("eval_batch_size", EVAL_BATCH.to_string()),
        ("eval_fingerprint", set.fingerprint.clone()),
        ("vocab_size", vocab.to_string()),
        ("pad_id", sp.pad.to_string()),
        ("unk_id", sp.unk.to_string()),
        ("cls_id", sp.cls.to_string()),
        ("sep_id", sp.sep.to_string()),
        ("mask_id", sp.mask.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let views = tensors
        .iter()
        .map(|(name, t)| {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .with_context(|| format!("tensor {name}"))?;
            Ok((name.to_string(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, &Some(metadata))
        .with_context(|| format!("serialising {}", out.display()))?;
    crate::rundir::write_atomically(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: variant {}, {steps} training batches of {batch} × {seq_len} ({} real tokens), \
         {} held-out MLM batches of {EVAL_BATCH} (fingerprint {}), tokenizer {}",
        out.display(),
        spec.variant,
        train.mask.iter().filter(|&&m| m > 0).count(),
        eval.len(),
        set.fingerprint,
        data::tokenizer_path(&cfg.tokenizer, &base_dir, &exp_dir).display()
    );
    Ok(())
}

fn pick<'a>(runs: &'a [RunSpec], variant: Option<&str>, file: &Path) -> Result<&'a RunSpec> {
    match variant {
        None => runs
            .first()
            .with_context(|| format!("{}: the grid has no run", file.display())),
        Some(v) => runs.iter().find(|r| r.variant == v).with_context(|| {
            format!(
                "{}: no variant `{v}`; the grid's variants are: {}",
                file.display(),
                runs.iter()
                    .map(|r| r.variant.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    }
}

/// Batches laid out row after row.
#[derive(Default)]
struct Columns {
    ids: Vec<u32>,
    mask: Vec<u8>,
    types: Vec<u8>,
    pairs: Vec<i32>,
    /// The original token at predicted positions, -100 elsewhere.
    labels: Vec<i32>,
}

impl Columns {
    fn push(&mut self, b: &data::Batch, with_labels: bool) {
        self.ids.extend_from_slice(&b.input_ids);
        self.mask
            .extend(b.attention_mask.iter().map(|&m| u8::from(m > 0.0)));
        self.types.extend(
            b.token_type_ids
                .iter()
                .map(|&t| u8::try_from(t).unwrap_or(1)),
        );
        self.pairs.extend(b.pair_labels.iter().map(|&p| p as i32));
        if with_labels {
            let start = self.labels.len();
            self.labels.resize(start + b.input_ids.len(), -100);
            for (&p, &l) in b.mlm_positions.iter().zip(&b.mlm_labels) {
                self.labels[start + p] = l as i32;
            }
        }
    }
}

/// A tensor's little-endian bytes, dtype and shape.
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Tensor {
    /// Token ids: u16 where every id fits (half the file), else i32.
    fn ids(ids: &[u32], vocab: usize, shape: &[usize]) -> Self {
        if vocab <= 1 << 16 {
            Self {
                dtype: Dtype::U16,
                shape: shape.to_vec(),
                bytes: ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
            }
        } else {
            Self::i32(&ids.iter().map(|&i| i as i32).collect::<Vec<_>>(), shape)
        }
    }
    fn i32(v: &[i32], shape: &[usize]) -> Self {
        Self {
            dtype: Dtype::I32,
            shape: shape.to_vec(),
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    fn u8(v: &[u8], shape: &[usize]) -> Self {
        Self {
            dtype: Dtype::U8,
            shape: shape.to_vec(),
            bytes: v.to_vec(),
        }
    }
}
