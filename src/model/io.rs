//! Weights in safetensors files: our own names, or a HF `BertModel` checkpoint mapped to ours.

use super::params::{ParamMut, Params};
use super::Encoder;
use safetensors::tensor::{Dtype as StDtype, TensorView};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: PathBuf, reason: String },
    #[error("{file}: not a safetensors file (truncated or corrupted?): {reason}")]
    Format { file: PathBuf, reason: String },
    #[error("{file}: tensor `{tensor}` is missing (looked for {looked})")]
    Missing {
        file: PathBuf,
        tensor: String,
        looked: String,
    },
    #[error("{file}: tensor `{tensor}` has shape {got:?}, the model expects {want:?}")]
    Shape {
        file: PathBuf,
        tensor: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("{file}: tensor `{tensor}` is {dtype}; only F32 weights can be loaded")]
    Dtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{file}: tensor `{tensor}` holds a non-finite value at index {index}")]
    NonFinite {
        file: PathBuf,
        tensor: String,
        index: usize,
    },
}

/// Which names the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Our dotted names, as `save` writes them.
    Pretext,
    /// HF transformers `BertModel` names (with or without the `bert.` prefix of
    /// `BertForPreTraining`, and the old `gamma`/`beta` LayerNorm names).
    HfBert,
}

/// HF's name for one of ours.
pub fn hf_name(ours: &str) -> String {
    let mut s = ours.to_string();
    for (from, to) in [
        ("embeddings.word.", "embeddings.word_embeddings."),
        ("embeddings.position.", "embeddings.position_embeddings."),
        (
            "embeddings.token_type.",
            "embeddings.token_type_embeddings.",
        ),
        ("embeddings.norm.", "embeddings.LayerNorm."),
        ("encoder.layers.", "encoder.layer."),
        (".attn.q.", ".attention.self.query."),
        (".attn.k.", ".attention.self.key."),
        (".attn.v.", ".attention.self.value."),
        (".attn.out.", ".attention.output.dense."),
        (".attn_norm.", ".attention.output.LayerNorm."),
        (".ffn.up.", ".intermediate.dense."),
        (".ffn.down.", ".output.dense."),
        (".ffn_norm.", ".output.LayerNorm."),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The names a file with `naming` may give our tensor `ours`, in the order they are tried.
pub fn candidates(ours: &str, naming: Naming) -> Vec<String> {
    match naming {
        Naming::Pretext => vec![ours.to_string()],
        Naming::HfBert => {
            let hf = hf_name(ours);
            let mut c = vec![hf.clone(), format!("bert.{hf}")];
            if hf.contains("LayerNorm.") {
                let old = hf
                    .replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta");
                c.push(old.clone());
                c.push(format!("bert.{old}"));
            }
            c
        }
    }
}

pub fn tensor_f32(file: &Path, name: &str, view: &TensorView) -> Result<Vec<f32>, WeightsError> {
    if view.dtype() != StDtype::F32 {
        return Err(WeightsError::Dtype {
            file: file.into(),
            tensor: name.into(),
            dtype: format!("{:?}", view.dtype()),
        });
    }
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        return Err(WeightsError::NonFinite {
            file: file.into(),
            tensor: name.into(),
            index,
        });
    }
    Ok(data)
}

/// Loads every parameter of `enc` from `file`. All tensors are checked before any is copied,
/// so a bad file leaves the model untouched. Returns the file's tensors that were not used
/// (e.g. a pretraining head).
pub fn load(enc: &mut Encoder, file: &Path, naming: Naming) -> Result<Vec<String>, WeightsError> {
    let bytes = crate::files::read(file).map_err(|e| WeightsError::Io {
        file: file.into(),
        reason: e.to_string(),
    })?;
    load_bytes(enc, &bytes, file, naming)
}

pub fn load_bytes(
    enc: &mut Encoder,
    bytes: &[u8],
    file: &Path,
    naming: Naming,
) -> Result<Vec<String>, WeightsError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format {
        file: file.into(),
        reason: e.to_string(),
    })?;
    let used = load_into(enc, &st, file, &|name| candidates(name, naming))?;
    let mut unused: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .cloned()
        .collect();
    unused.sort();
    Ok(unused)
}

/// Copies every parameter of `target` from `st`, trying the file names `names(ours)` in
/// order; a parameter for which `names` offers none is left as it is. All tensors are checked
/// (presence, shape, dtype, finiteness) before any is copied, so a bad file leaves `target`
/// untouched. Returns the file names that were used.
pub fn load_into(
    target: &mut dyn Params,
    st: &SafeTensors,
    file: &Path,
    names: &dyn Fn(&str) -> Vec<String>,
) -> Result<std::collections::HashSet<String>, WeightsError> {
    let mut staged: Vec<(String, Vec<f32>)> = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut problem = None;
    target.visit_mut("", &mut |name, p| {
        if problem.is_some() {
            return;
        }
        let cands = names(&name);
        if cands.is_empty() {
            return;
        }
        let Some((found, view)) = cands
            .iter()
            .find_map(|c| st.tensor(c).ok().map(|v| (c.clone(), v)))
        else {
            problem = Some(WeightsError::Missing {
                file: file.into(),
                tensor: name.clone(),
                looked: cands.join(", "),
            });
            return;
        };
        let want = p.shape();
        if view.shape() != want.as_slice() {
            problem = Some(WeightsError::Shape {
                file: file.into(),
                tensor: found,
                got: view.shape().to_vec(),
                want,
            });
            return;
        }
        match tensor_f32(file, &found, &view) {
            Ok(data) => {
                used.insert(found);
                staged.push((name, data));
            }
            Err(e) => problem = Some(e),
        }
    });
    if let Some(e) = problem {
        return Err(e);
    }
    let mut staged: BTreeMap<String, Vec<f32>> = staged.into_iter().collect();
    target.visit_mut("", &mut |name, mut p: ParamMut| {
        if let Some(data) = staged.remove(&name) {
            p.copy_from(&data);
        }
    });
    Ok(used)
}

/// Raw little-endian bytes of `(name, shape, values)` triples, ready for `serialize`.
pub fn encode(tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect()
}

/// Serialises encoded tensors with optional string metadata.
pub fn serialize(
    owned: &[(String, Vec<usize>, Vec<u8>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(StDtype::F32, shape.clone(), data).expect("shape matches data"),
            )
        })
        .collect();
    safetensors::serialize(views, &metadata).expect("serialising in-memory f32 tensors cannot fail")
}

/// The encoder's parameters as safetensors bytes, with our names.
pub fn to_bytes(enc: &Encoder) -> Vec<u8> {
    let tensors = enc
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.shape(), p.to_vec()))
        .collect();
    serialize(&encode(tensors), None)
}
