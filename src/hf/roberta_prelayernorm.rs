//! HF transformers' `RobertaPreLayerNorm` (fairseq's `--encoder-normalize-before`) is what
//! pretext's pre-LN BERT computes, under other names and with its positions numbered
//! otherwise. This module is that translation and nothing else; `export` writes pre-LN runs
//! through it and `import` reads such directories back through it, so both sides share one
//! table.
//!
//! The computation is the same layer for layer: embeddings summed and LayerNorm-ed, then per
//! layer `x + Attn(LN_a(x))` and `x + FFN(LN_f(x))`, a final LayerNorm over the last layer, the
//! pooler on `[CLS]`, and BERT's MLM head (dense → GELU → LayerNorm → tied decoder + bias).
//! What differs:
//! - names: the layer norms sit beside what they normalise (`attention.LayerNorm`,
//!   `intermediate.LayerNorm` where BERT has `attention.output.LayerNorm` and
//!   `output.LayerNorm`), the final norm is the model's own `LayerNorm`, the MLM head is
//!   `lm_head`;
//! - positions: RoBERTa numbers the positions of real tokens from `pad_token_id + 1` (padding
//!   gets the padding row), so its table holds that many rows before pretext's first one.
//!   Hidden states of real tokens are then equal; those of padding differ, and nothing reads
//!   them (attention masks padding out).
//!
//! Checked against transformers by `tests/fixtures/make_roberta_prelayernorm_fixture.py` and
//! `tests/encoder.rs`.

use crate::hf::read_renamed;
use crate::hf::Named;
use crate::model::io::WeightsError;
use safetensors::SafeTensors;
use std::path::Path;

/// `config.json`'s `model_type` of such a directory.
pub const MODEL_TYPE: &str = "roberta-prelayernorm";
/// The class `export` names in `config.json`'s `architectures`.
pub const ARCHITECTURE: &str = "RobertaPreLayerNormForMaskedLM";

/// BERT's name (as `export::hf_pretraining_name` writes it) → RobertaPreLayerNorm's, for every
/// tensor outside the layers. Prefixes, matched in order.
const OUTSIDE: [(&str, &str); 7] = [
    (
        "bert.encoder.final_norm.",
        "roberta_prelayernorm.LayerNorm.",
    ),
    ("bert.embeddings.", "roberta_prelayernorm.embeddings."),
    ("bert.pooler.", "roberta_prelayernorm.pooler."),
    ("cls.predictions.transform.dense.", "lm_head.dense."),
    (
        "cls.predictions.transform.LayerNorm.",
        "lm_head.layer_norm.",
    ),
    ("cls.predictions.decoder.", "lm_head.decoder."),
    ("cls.predictions.bias", "lm_head.bias"),
];

/// Inside a layer only the two norms are named otherwise.
const LAYER_NORMS: [(&str, &str); 2] = [
    ("attention.output.LayerNorm.", "attention.LayerNorm."),
    ("output.LayerNorm.", "intermediate.LayerNorm."),
];

const BERT_LAYER: &str = "bert.encoder.layer.";
const ROBERTA_LAYER: &str = "roberta_prelayernorm.encoder.layer.";
const BERT_POSITIONS: &str = "bert.embeddings.position_embeddings.weight";

/// RobertaPreLayerNorm's name for a tensor of BERT's layout; `None` where it has no place
/// (the NSP head).
pub fn from_bert(name: &str) -> Option<String> {
    translate(name, BERT_LAYER, ROBERTA_LAYER, false)
}

/// BERT's name for a RobertaPreLayerNorm tensor; `None` for one pretext does not read.
pub fn to_bert(name: &str) -> Option<String> {
    translate(name, ROBERTA_LAYER, BERT_LAYER, true)
}

fn translate(name: &str, layer_from: &str, layer_to: &str, back: bool) -> Option<String> {
    let pick = |pair: &(&'static str, &'static str)| if back { (pair.1, pair.0) } else { *pair };
    if let Some(rest) = name.strip_prefix(layer_from) {
        let (index, inner) = rest.split_once('.')?;
        let inner = LAYER_NORMS
            .iter()
            .map(pick)
            .find_map(|(from, to)| inner.strip_prefix(from).map(|t| format!("{to}{t}")))
            .unwrap_or_else(|| inner.to_string());
        return Some(format!("{layer_to}{index}.{inner}"));
    }
    OUTSIDE
        .iter()
        .map(pick)
        .find_map(|(from, to)| name.strip_prefix(from).map(|t| format!("{to}{t}")))
}

/// The rows RoBERTa's position table holds before the first real token's: it numbers
/// positions from `pad_token_id + 1`.
pub fn position_offset(pad_token_id: usize) -> usize {
    pad_token_id.saturating_add(1)
}

/// BERT-named tensors (an export's) as a RobertaPreLayerNorm file holds them: renamed, the
/// position table preceded by `position_offset(pad)` rows of zeros (the padding row among
/// them). Returns the tensors and the names left behind (no place in RobertaPreLayerNorm).
pub fn from_bert_tensors(tensors: Vec<Named>, pad: usize) -> (Vec<Named>, Vec<String>) {
    let mut out = Vec::new();
    let mut left = Vec::new();
    for (name, shape, values) in tensors {
        let Some(theirs) = from_bert(&name) else {
            left.push(name);
            continue;
        };
        if name == BERT_POSITIONS {
            let offset = position_offset(pad) * shape[1];
            let mut shifted = vec![0.0; offset];
            shifted.extend(values);
            out.push((
                theirs,
                vec![shape[0] + position_offset(pad), shape[1]],
                shifted,
            ));
        } else {
            out.push((theirs, shape, values));
        }
    }
    (out, left)
}

/// A RobertaPreLayerNorm file's tensors under BERT's names, the position table without the
/// rows before the first real token's; tensors pretext does not read are left out. Each is
/// checked (dtype, finiteness) as `model::io` checks BERT's.
pub fn to_bert_tensors(
    st: &SafeTensors,
    file: &Path,
    pad: usize,
) -> Result<Vec<Named>, WeightsError> {
    let mut out = read_renamed(st, file, to_bert)?;
    let skip = position_offset(pad);
    if let Some((_, shape, values)) = out.iter_mut().find(|(n, ..)| n == BERT_POSITIONS) {
        if shape.len() != 2 || shape[0] <= skip {
            return Err(WeightsError::Shape {
                file: file.into(),
                tensor: "roberta_prelayernorm.embeddings.position_embeddings.weight".into(),
                got: shape.clone(),
                want: vec![skip + 1, 0],
            });
        }
        values.drain(..skip * shape[1]);
        shape[0] -= skip;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_roberta_prelayernorm_and_come_back() {
        for (bert, roberta) in [
            (
                "bert.encoder.layer.3.attention.output.LayerNorm.weight",
                "roberta_prelayernorm.encoder.layer.3.attention.LayerNorm.weight",
            ),
            (
                "bert.encoder.layer.0.output.LayerNorm.bias",
                "roberta_prelayernorm.encoder.layer.0.intermediate.LayerNorm.bias",
            ),
            (
                "bert.encoder.layer.11.attention.output.dense.weight",
                "roberta_prelayernorm.encoder.layer.11.attention.output.dense.weight",
            ),
            (
                "bert.encoder.layer.1.output.dense.bias",
                "roberta_prelayernorm.encoder.layer.1.output.dense.bias",
            ),
            (
                "bert.encoder.final_norm.weight",
                "roberta_prelayernorm.LayerNorm.weight",
            ),
            (
                "bert.embeddings.LayerNorm.bias",
                "roberta_prelayernorm.embeddings.LayerNorm.bias",
            ),
            (
                "cls.predictions.transform.LayerNorm.weight",
                "lm_head.layer_norm.weight",
            ),
            ("cls.predictions.bias", "lm_head.bias"),
            ("cls.predictions.decoder.weight", "lm_head.decoder.weight"),
        ] {
            assert_eq!(from_bert(bert).as_deref(), Some(roberta), "{bert}");
            assert_eq!(to_bert(roberta).as_deref(), Some(bert), "{roberta}");
        }
        assert_eq!(from_bert("cls.seq_relationship.weight"), None);
        assert_eq!(to_bert("classifier.dense.weight"), None);
    }

    #[test]
    fn positions_gain_the_rows_before_pad_plus_one_and_lose_them_again() {
        let table = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3 positions × 2
        let (out, left) =
            from_bert_tensors(vec![(BERT_POSITIONS.into(), vec![3, 2], table.clone())], 1);
        assert!(left.is_empty());
        let (name, shape, values) = &out[0];
        assert_eq!(
            name,
            "roberta_prelayernorm.embeddings.position_embeddings.weight"
        );
        assert_eq!(shape, &vec![5, 2]);
        assert_eq!(&values[4..], &table[..]);
        let bytes = crate::model::io::serialize(&crate::model::io::encode(out), None);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let back = to_bert_tensors(&st, Path::new("x"), 1).unwrap();
        assert_eq!(back, vec![(BERT_POSITIONS.to_string(), vec![3, 2], table)]);
    }
}
