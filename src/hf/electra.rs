//! HF transformers' ELECTRA classes for a post-LN run trained with the `electra` objective:
//! the encoder is the discriminator (`ElectraForPreTraining`), and when the generator shares
//! it (the default, the paper's "tie all weights" ablation) the generator's MLM head makes the
//! same directory an `ElectraForMaskedLM` too — each class loads the tensors it names and
//! ignores the other's.
//!
//! ELECTRA's encoder is BERT's under `electra.` without the pooler, and with
//! `embedding_size = hidden_size` (no embedding projection, which pretext does not have). Its
//! generator head is BERT's MLM head (dense → GELU → LayerNorm → tied decoder + bias) under
//! `generator_predictions` / `generator_lm_head`. Its discriminator head is one logit per token
//! where pretext's is two (original, replaced): a softmax over two logits is the sigmoid of
//! their difference, so the exported prediction layer is the difference of the two rows —
//! the same probabilities, not an approximation. A generator with an encoder of its own
//! (`generator_size`) has no place in one directory and stays behind.
//!
//! Reading such a directory back (`import`) gives the encoder and, as the MLM head, the
//! generator's; the discriminator head is not read (no pretext command uses it outside
//! training).

use crate::hf::{read_renamed, Named};
use crate::model::io::WeightsError;
use safetensors::SafeTensors;
use std::path::Path;

/// `config.json`'s `model_type` of such a directory.
pub const MODEL_TYPE: &str = "electra";
/// The classes `export` names in `config.json`'s `architectures`.
pub const ARCHITECTURES: [&str; 2] = ["ElectraForPreTraining", "ElectraForMaskedLM"];

/// The objective's head prefix in a checkpoint.
const HEAD: &str = "heads.electra.";

/// BERT's MLM head names (`export::hf_pretraining_name`'s) → the generator's.
const GENERATOR: [(&str, &str); 4] = [
    (
        "cls.predictions.transform.dense.",
        "generator_predictions.dense.",
    ),
    (
        "cls.predictions.transform.LayerNorm.",
        "generator_predictions.LayerNorm.",
    ),
    ("cls.predictions.decoder.weight", "generator_lm_head.weight"),
    ("cls.predictions.bias", "generator_lm_head.bias"),
];

/// ELECTRA's name for one of an ELECTRA run's tensors (our name); `None` where it has no
/// place: the pooler, a generator's own encoder, any other objective's head. The
/// discriminator's classifier is named here but reshaped by `from_ours`.
pub fn electra_name(ours: &str) -> Option<String> {
    if let Some(head) = ours.strip_prefix(HEAD) {
        if let Some(g) = head.strip_prefix("generator.") {
            let bert = crate::hf::export::hf_pretraining_name(&format!("heads.mlm.{g}"))?;
            return swap(&bert, &GENERATOR, false);
        }
        return match head {
            "dense.weight" | "dense.bias" => Some(format!("discriminator_predictions.{head}")),
            "classifier.weight" => Some("discriminator_predictions.dense_prediction.weight".into()),
            "classifier.bias" => Some("discriminator_predictions.dense_prediction.bias".into()),
            _ => None,
        };
    }
    if ours.starts_with("heads.") || ours.starts_with("pooler.") {
        return None;
    }
    Some(format!("electra.{}", crate::model::io::hf_name(ours)))
}

/// BERT's name (what `import` reads) for an ELECTRA tensor; `None` for the discriminator head
/// and anything else pretext does not read.
pub fn to_bert(name: &str) -> Option<String> {
    if let Some(encoder) = name.strip_prefix("electra.") {
        return Some(format!("bert.{encoder}"));
    }
    swap(name, &GENERATOR, true)
}

/// An ELECTRA file's tensors that pretext reads, under BERT's names, each checked (dtype,
/// finiteness) as `model::io` checks BERT's.
pub fn to_bert_tensors(st: &SafeTensors, file: &Path) -> Result<Vec<Named>, WeightsError> {
    read_renamed(st, file, to_bert)
}

fn swap(name: &str, table: &[(&str, &str)], back: bool) -> Option<String> {
    table.iter().find_map(|&(bert, electra)| {
        let (from, to) = if back {
            (electra, bert)
        } else {
            (bert, electra)
        };
        name.strip_prefix(from).map(|t| format!("{to}{t}"))
    })
}

/// An ELECTRA run's tensors (our names) as ELECTRA's, the discriminator's two logits folded
/// into one (row "replaced" minus row "original"); returns them and the names left behind.
pub fn from_ours(tensors: Vec<Named>) -> (Vec<Named>, Vec<String>) {
    let mut out = Vec::new();
    let mut left = Vec::new();
    for (name, shape, values) in tensors {
        let Some(theirs) = electra_name(&name) else {
            left.push(name);
            continue;
        };
        match name.strip_prefix(HEAD) {
            Some("classifier.weight") => {
                let (original, replaced) = values.split_at(shape[1]);
                let diff = replaced.iter().zip(original).map(|(r, o)| r - o).collect();
                out.push((theirs, vec![1, shape[1]], diff));
            }
            Some("classifier.bias") => out.push((theirs, vec![1], vec![values[1] - values[0]])),
            _ => out.push((theirs, shape, values)),
        }
    }
    (out, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_electra_and_the_reader_finds_bert_names_back() {
        for (ours, electra) in [
            (
                "encoder.layers.2.attn.q.weight",
                "electra.encoder.layer.2.attention.self.query.weight",
            ),
            ("embeddings.norm.bias", "electra.embeddings.LayerNorm.bias"),
            (
                "heads.electra.generator.transform.weight",
                "generator_predictions.dense.weight",
            ),
            (
                "heads.electra.generator.norm.bias",
                "generator_predictions.LayerNorm.bias",
            ),
            ("heads.electra.generator.bias", "generator_lm_head.bias"),
            (
                "heads.electra.dense.weight",
                "discriminator_predictions.dense.weight",
            ),
        ] {
            assert_eq!(electra_name(ours).as_deref(), Some(electra), "{ours}");
        }
        for gone in [
            "pooler.dense.weight",
            "heads.electra.generator_encoder.embeddings.word.weight",
            "heads.mlm.bias",
        ] {
            assert_eq!(electra_name(gone), None, "{gone}");
        }
        assert_eq!(
            to_bert("electra.encoder.layer.0.output.dense.bias").as_deref(),
            Some("bert.encoder.layer.0.output.dense.bias")
        );
        assert_eq!(
            to_bert("generator_predictions.LayerNorm.weight").as_deref(),
            Some("cls.predictions.transform.LayerNorm.weight")
        );
        assert_eq!(to_bert("discriminator_predictions.dense.weight"), None);
    }

    /// HF's sigmoid of the one exported logit is pretext's softmax probability of "replaced".
    #[test]
    fn one_logit_gives_the_two_logit_softmax() {
        let (w, b) = (vec![0.3, -1.2, 0.5, 0.25], vec![0.1, -0.4]); // 2 × 2, then 2
        let (out, left) = from_ours(vec![
            (
                "heads.electra.classifier.weight".into(),
                vec![2, 2],
                w.clone(),
            ),
            ("heads.electra.classifier.bias".into(), vec![2], b.clone()),
        ]);
        assert!(left.is_empty());
        assert_eq!(out[0].1, vec![1, 2]);
        let x = [0.7f32, -2.0];
        let logit = |row: &[f32], bias: f32| row[0] * x[0] + row[1] * x[1] + bias;
        let (l0, l1) = (logit(&w[..2], b[0]), logit(&w[2..], b[1]));
        let softmax = l1.exp() / (l0.exp() + l1.exp());
        let sigmoid = 1.0 / (1.0 + (-logit(&out[0].2, out[1].2[0])).exp());
        assert!((softmax - sigmoid).abs() < 1e-6, "{softmax} vs {sigmoid}");
    }
}
