//! Checkpoints: weights, AdamW moments, PowerNorm running statistics, data position and
//! random-stream states in one safetensors file, written atomically (temporary file, fsync,
//! rename, fsync of the folder) so that a crash never leaves a half-written checkpoint where
//! `--resume` would pick it up.

use super::bundle::Bundle;
use super::optimizer::AdamW;
use crate::data::StreamState;
use crate::model::io::{self, WeightsError};
use crate::model::Params;
use crate::rng::Rng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Everything besides tensors that an exact resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub stream: StreamState,
    /// The short stream's position, in a run with `training.short_phase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_stream: Option<StreamState>,
    pub dropout_rng: Rng,
    pub optimizer_step: u64,
    /// `iters` counters of the PowerNorm layers, by name.
    pub powernorm_iters: Vec<(String, u64)>,
    /// The resolved config as TOML; resume refuses a checkpoint of other settings.
    pub config: String,
    /// Learning-rate multiplier left by divergence roll-backs (1 without any).
    #[serde(default = "unit")]
    pub lr_scale: f64,
    #[serde(default)]
    pub rollbacks: u32,
    /// Seconds spent in training steps so far: what a time budget (`training.budget`) has
    /// used. Checkpoints from before budgets existed read 0.
    #[serde(default)]
    pub train_seconds: f64,
    /// The arithmetic of the products that wrote it (`fp32`, or `bf16` where the CPU ran
    /// `training.precision = "bf16"` natively). Checkpoints from before the key read `fp32`.
    #[serde(default = "fp32")]
    pub precision: String,
}

fn unit() -> f64 {
    1.0
}

fn fp32() -> String {
    "fp32".into()
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{file}: cannot write the checkpoint: {reason}")]
    Write { file: String, reason: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{file}: tensor `{tensor}` does not match its checksum (corrupted or missing); the checkpoint is not used")]
    Corrupt { file: String, tensor: String },
    #[error("{file}: the checkpoint has no training state (`pretext.state` metadata); it is not a pretext checkpoint")]
    NoState { file: String },
    #[error("{file}: the checkpoint's training state is unreadable: {reason}")]
    BadState { file: String, reason: String },
    #[error("{file}: the checkpoint was written with other settings; resume needs the same resolved config (line {line}: `{was}`, now `{now}`)")]
    ConfigMismatch {
        file: String,
        line: usize,
        was: String,
        now: String,
    },
}

const STATE_KEY: &str = "pretext.state";
/// CRC-32 of each tensor's bytes, as JSON: safetensors checks the header's offsets but not
/// the data, so a corrupted tensor would otherwise load silently. Per tensor, so that the
/// refusal can name it.
const CRC_KEY: &str = "pretext.crc32";

pub fn save(
    path: &Path,
    bundle: &Bundle,
    optim: &AdamW,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let mut tensors = Vec::new();
    for (i, (name, p)) in bundle.named_params().into_iter().enumerate() {
        let n = optim.m[i].len();
        tensors.push((format!("model.{name}"), p.shape(), p.to_vec()));
        tensors.push((format!("optim.m.{name}"), vec![n], optim.m[i].clone()));
        tensors.push((format!("optim.v.{name}"), vec![n], optim.v[i].clone()));
    }
    for (module, state) in bundle.running_states() {
        for (vector, values) in state.vectors() {
            let key = state_key(state.kind(), &module, vector);
            tensors.push((key, vec![values.len()], values));
        }
    }
    let state_json = serde_json::to_string(state).expect("plain data serialises");
    let encoded = io::encode(tensors);
    let crcs: std::collections::BTreeMap<&str, u32> = encoded
        .iter()
        .map(|(n, _, data)| (n.as_str(), crc32fast::hash(data)))
        .collect();
    let crcs = serde_json::to_string(&crcs).expect("plain data serialises");
    let bytes = io::serialize(
        &encoded,
        Some(HashMap::from([
            (STATE_KEY.to_string(), state_json),
            (CRC_KEY.to_string(), crcs),
        ])),
    );
    crate::rundir::write_atomically(path, &bytes).map_err(|e| CheckpointError::Write {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A checkpoint's bytes and training state, after every tensor's checksum was verified.
fn read_verified(path: &Path) -> Result<(Vec<u8>, TrainState), CheckpointError> {
    let file = path.display().to_string();
    let bytes = crate::files::read(path).map_err(|e| WeightsError::Io {
        file: path.into(),
        reason: e.to_string(),
    })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| WeightsError::Format {
        file: path.into(),
        reason: e.to_string(),
    })?;
    let state_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or(CheckpointError::NoState { file: file.clone() })?;
    let crcs: std::collections::BTreeMap<String, u32> = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CRC_KEY))
        .and_then(|c| serde_json::from_str(c).ok())
        .ok_or(CheckpointError::BadState {
            file: file.clone(),
            reason: "no tensor checksums (`pretext.crc32`)".into(),
        })?;
    let state: TrainState =
        serde_json::from_str(state_json).map_err(|e| CheckpointError::BadState {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    {
        let st = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
            file: path.into(),
            reason: e.to_string(),
        })?;
        for (name, expected) in &crcs {
            let intact = st
                .tensor(name)
                .is_ok_and(|v| crc32fast::hash(v.data()) == *expected);
            if !intact {
                return Err(CheckpointError::Corrupt {
                    file,
                    tensor: name.clone(),
                });
            }
        }
    }
    Ok((bytes, state))
}

/// A tensor's name, shape and values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A pretraining checkpoint read and verified once, for taking parts of it outside training
/// (an encoder, a head, its settings, every tensor) without reading the file again per part.
pub struct Opened {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
    pub state: TrainState,
}

/// Reads `path` and verifies every tensor's checksum.
pub fn open(path: &Path) -> Result<Opened, CheckpointError> {
    let (bytes, state) = read_verified(path)?;
    Ok(Opened {
        path: path.into(),
        bytes,
        state,
    })
}

impl Opened {
    fn tensors(&self) -> Result<SafeTensors<'_>, CheckpointError> {
        Ok(
            SafeTensors::deserialize(&self.bytes).map_err(|e| WeightsError::Format {
                file: self.path.clone(),
                reason: e.to_string(),
            })?,
        )
    }

    /// The resolved experiment config the checkpoint was trained with (TOML).
    pub fn config(&self) -> &str {
        &self.state.config
    }

    /// Whether the checkpoint holds parameters under `model.<prefix>.` (e.g. `heads.mlm`).
    pub fn has(&self, prefix: &str) -> Result<bool, CheckpointError> {
        let want = format!("model.{prefix}.");
        Ok(self.tensors()?.names().iter().any(|n| n.starts_with(&want)))
    }

    /// Every model tensor (`model.<name>` in the file) as `(name, shape, values)`, by name:
    /// what an export to another framework renames.
    pub fn model_tensors(&self) -> Result<Vec<NamedTensor>, CheckpointError> {
        let st = self.tensors()?;
        let mut out = Vec::new();
        for (name, view) in st.tensors() {
            if let Some(ours) = name.strip_prefix("model.") {
                out.push((
                    ours.to_string(),
                    view.shape().to_vec(),
                    io::tensor_f32(&self.path, &name, &view)?,
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Loads the encoder (weights and running state, e.g. PowerNorm's statistics); returns the
    /// step the checkpoint was written at. The heads and optimiser state stay behind.
    pub fn load_encoder(&self, enc: &mut crate::model::Encoder) -> Result<u64, CheckpointError> {
        let st = self.tensors()?;
        let states = saved_states(&st, &self.path, enc, &self.state)?;
        io::load_into(enc as &mut dyn Params, &st, &self.path, &|name| {
            vec![format!("model.{name}")]
        })?;
        restore_states(enc, states);
        Ok(self.state.step)
    }

    /// Loads the parameters under `model.<prefix>.` into `head` (an objective's head, e.g.
    /// `heads.mlm`), for using or continuing a trained head.
    pub fn load_head(&self, prefix: &str, head: &mut dyn Params) -> Result<(), CheckpointError> {
        let st = self.tensors()?;
        io::load_into(head, &st, &self.path, &|name| {
            vec![format!("model.{prefix}.{name}")]
        })?;
        Ok(())
    }
}

/// Every model tensor of the checkpoint at `path`, checksums verified ([`Opened::model_tensors`]).
pub fn model_tensors(path: &Path) -> Result<Vec<NamedTensor>, CheckpointError> {
    open(path)?.model_tensors()
}

/// The resolved experiment config a checkpoint was trained with (TOML).
pub fn read_config(path: &Path) -> Result<String, CheckpointError> {
    Ok(read_verified(path)?.1.config)
}

/// Loads only the encoder of the checkpoint at `path` ([`Opened::load_encoder`]), for
/// downstream tasks.
pub fn load_encoder(path: &Path, enc: &mut crate::model::Encoder) -> Result<u64, CheckpointError> {
    open(path)?.load_encoder(enc)
}

/// Restores `bundle` and `optim` from `path` and returns the training state. Nothing is
/// changed unless the whole checkpoint is valid and was written with `config`.
pub fn load(
    path: &Path,
    bundle: &mut Bundle,
    optim: &mut AdamW,
    config: &str,
) -> Result<TrainState, CheckpointError> {
    let file = path.display().to_string();
    let (bytes, state) = read_verified(path)?;
    if let Some((line, was, now)) = super::settings::settings_difference(&state.config, config) {
        return Err(CheckpointError::ConfigMismatch {
            file,
            line,
            was,
            now,
        });
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        file: path.into(),
        reason: e.to_string(),
    })?;

    // Check every optimiser and PowerNorm tensor before touching anything.
    let names: Vec<(String, usize)> = bundle
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.shape().iter().product()))
        .collect();
    let mut m = Vec::new();
    let mut v = Vec::new();
    for (name, n) in &names {
        m.push(flat_tensor(&st, path, &format!("optim.m.{name}"), *n)?);
        v.push(flat_tensor(&st, path, &format!("optim.v.{name}"), *n)?);
    }
    let states = saved_states(&st, path, bundle, &state)?;
    io::load_into(bundle as &mut dyn Params, &st, path, &|name| {
        vec![format!("model.{name}")]
    })?;
    optim.m = m;
    optim.v = v;
    optim.step = state.optimizer_step;
    restore_states(bundle, states);
    Ok(state)
}

/// A running state's tensor in a checkpoint: `powernorm.encoder.layers.0.attn_norm.ema_gz`.
fn state_key(kind: &str, module: &str, vector: &str) -> String {
    format!("{kind}.{module}.{vector}")
}

/// One module's saved running state: its vectors and its counter.
type SavedState = (Vec<Vec<f32>>, u64);

/// The saved running state of every module of `model` that keeps one (vectors, then counter
/// from the resume state), checked, not yet applied: a bad file leaves the model untouched.
fn saved_states(
    st: &SafeTensors,
    path: &Path,
    model: &dyn Params,
    state: &TrainState,
) -> Result<Vec<SavedState>, WeightsError> {
    let mut out = Vec::new();
    for (module, s) in model.running_states() {
        let mut vectors = Vec::new();
        for (vector, now) in s.vectors() {
            let key = state_key(s.kind(), &module, vector);
            vectors.push(flat_tensor(st, path, &key, now.len())?);
        }
        let counter = state
            .powernorm_iters
            .iter()
            .find(|(n, _)| *n == module)
            .map_or(0, |(_, i)| *i);
        out.push((vectors, counter));
    }
    Ok(out)
}

/// Applies what `saved_states` read, module by module in the same visiting order.
fn restore_states(model: &dyn Params, states: Vec<SavedState>) {
    for ((_, s), (vectors, counter)) in model.running_states().into_iter().zip(states) {
        s.restore(vectors, counter);
    }
}

/// The 1-D tensor `key` of `len` finite f32 values, or an error naming the file and tensor.
fn flat_tensor(
    st: &SafeTensors,
    path: &Path,
    key: &str,
    len: usize,
) -> Result<Vec<f32>, WeightsError> {
    let view = st.tensor(key).map_err(|_| WeightsError::Missing {
        file: path.into(),
        tensor: key.into(),
        looked: key.into(),
    })?;
    let data = io::tensor_f32(path, key, &view)?;
    if data.len() != len {
        return Err(WeightsError::Shape {
            file: path.into(),
            tensor: key.into(),
            got: view.shape().to_vec(),
            want: vec![len],
        });
    }
    Ok(data)
}
