//! `pretext export RUN --hf DIR`: a pretraining run as an HF transformers directory
//! (`config.json`, `model.safetensors`, `tokenizer.json`, `vocab.txt`,
//! `tokenizer_config.json`): a post-LN run as BERT, which `BertForPreTraining.from_pretrained`
//! and `BertForMaskedLM.from_pretrained` load; a pre-LN run as `RobertaPreLayerNorm`, which
//! `AutoModelForMaskedLM.from_pretrained` loads.
//!
//! pretext's parameters already have PyTorch's layouts (linear weights `(out, in)`), so the
//! export is a renaming: the encoder's names through `model::io::hf_name` under `bert.`, the MLM
//! head under `cls.predictions.` (its decoder is the word embeddings, tied as in HF), the NSP
//! head as `cls.seq_relationship`; for a pre-LN run those names then go through
//! `roberta_prelayernorm`, which also gives the position table the rows RoBERTa keeps before
//! `pad_token_id + 1` (the NSP head has no place there). A post-LN run trained with `electra`
//! becomes `ElectraForPreTraining` + `ElectraForMaskedLM` through `hf::electra`. PowerNorm,
//! ALiBi and bias-free projections have no HF counterpart and are refused. An SOP or
//! contrastive head has no place in these classes and stays behind (the export says so).

use crate::config::{Experiment, NormKind};
use crate::data::Tokenizer;
use crate::hf::electra;
use crate::hf::roberta_prelayernorm as prelayernorm;
use crate::hf::{Class, Named};
use crate::train::checkpoint;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The marker that makes a folder an earlier export, which a new export may replace.
const MARKER: &str = "pretext_export.json";

/// HF's name for one of a pretraining checkpoint's tensors; `None` for a head HF's BERT
/// classes have no place for.
pub fn hf_pretraining_name(ours: &str) -> Option<String> {
    if let Some(head) = ours.strip_prefix("heads.mlm.") {
        return Some(
            match head {
                "transform.weight" => "cls.predictions.transform.dense.weight",
                "transform.bias" => "cls.predictions.transform.dense.bias",
                "norm.weight" => "cls.predictions.transform.LayerNorm.weight",
                "norm.bias" => "cls.predictions.transform.LayerNorm.bias",
                "bias" => "cls.predictions.bias",
                "decoder.weight" => "cls.predictions.decoder.weight",
                _ => return None,
            }
            .to_string(),
        );
    }
    if let Some(head) = ours.strip_prefix("heads.nsp.classifier.") {
        return Some(format!("cls.seq_relationship.{head}"));
    }
    if ours.starts_with("heads.") {
        return None;
    }
    Some(format!("bert.{}", crate::model::io::hf_name(ours)))
}

/// Writes the HF directory; returns the line to print.
pub fn to_hf(target: &Path, tokenizer: Option<&Path>, out: &Path) -> Result<String> {
    let (run_dir, ckpt) = crate::predict::resolve(target)?;
    let saved = checkpoint::open(&ckpt)?;
    let cfg = crate::predict::saved_settings(&saved, &ckpt)?;
    let class = Class::of(&cfg, &ckpt)?;
    if !cfg.model.linear_bias {
        bail!(
            "{}: model.linear_bias = false has no HF BERT counterpart (its projections always \
             have biases); only runs with biases export",
            ckpt.display()
        );
    }
    if cfg.model.positions != crate::config::Positions::Learned {
        bail!(
            "{}: model.positions = \"alibi\" has no HF BERT counterpart (BERT learns a \
             position embedding table); only runs with learned positions export",
            ckpt.display()
        );
    }
    let (tok_path, tok) = Tokenizer::of_run(&run_dir, tokenizer, &cfg.tokenizer)?;
    refuse_overwriting(out)?;

    let (renamed, left) = class.rename(saved.model_tensors()?, tok.special.pad as usize);
    let words = renamed
        .iter()
        .find(|(n, ..)| n.ends_with("embeddings.word_embeddings.weight"))
        .map(|(_, s, _)| s[0])
        .context("the checkpoint has no word embeddings")?;
    if words != tok.vocab_size() {
        bail!(
            "{}: {} tokens, but the checkpoint's embeddings have {words} rows: is it the run's \
             tokenizer?",
            tok_path.display(),
            tok.vocab_size()
        );
    }
    let bytes = crate::model::io::serialize(&crate::model::io::encode(renamed), None);

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, data: &[u8]| {
        let p = out.join(name);
        crate::rundir::write_atomically(&p, data)
            .with_context(|| format!("writing {}", p.display()))
    };
    write("model.safetensors", &bytes)?;
    write("config.json", config_json(class, &cfg, &tok).as_bytes())?;
    write(
        "tokenizer.json",
        &crate::files::read(&tok_path)
            .with_context(|| format!("reading {}", tok_path.display()))?,
    )?;
    write("vocab.txt", vocab_txt(&tok).as_bytes())?;
    write("tokenizer_config.json", tokenizer_config(&cfg).as_bytes())?;
    let note = serde_json::json!({
        "checkpoint": ckpt.display().to_string(),
        "heads_left_behind": left,
    });
    write(MARKER, serde_json::to_string_pretty(&note)?.as_bytes())?;
    let behind = if left.is_empty() {
        String::new()
    } else {
        format!(
            "; left behind (no place in the HF class): {}",
            left.join(", ")
        )
    };
    let classes = class.architectures().join(" / ");
    Ok(format!(
        "{} → {} ({classes}, vocabulary {}){behind}",
        ckpt.display(),
        out.display(),
        tok.vocab_size()
    ))
}

/// A folder that holds anything but an earlier export is refused.
fn refuse_overwriting(out: &Path) -> Result<()> {
    if let Err(reason) = crate::files::folder_possible(out, "--hf") {
        bail!("{}: {reason} (a new or empty one)", out.display());
    }
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(()); // does not exist yet
    };
    if entries.count() > 0 && !out.join(MARKER).is_file() {
        bail!(
            "{}: a folder that is not an earlier export of pretext; refusing to write into it \
             (choose an empty or new folder)",
            out.display()
        );
    }
    Ok(())
}

/// The class's `config.json`: BERT's keys, RobertaPreLayerNorm's position table
/// `pad_token_id + 1` rows longer, ELECTRA's embeddings as wide as the layers.
fn config_json(class: Class, cfg: &Experiment, tok: &Tokenizer) -> String {
    let m = &cfg.model;
    let pad = tok.special.pad as usize;
    let positions = match class {
        Class::RobertaPreLayerNorm => m.max_positions + prelayernorm::position_offset(pad),
        _ => m.max_positions,
    };
    let mut v = serde_json::json!({
        "architectures": class.architectures(),
        "model_type": class.model_type(),
        "vocab_size": tok.vocab_size(),
        "hidden_size": m.hidden,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "intermediate_size": m.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": m.dropout,
        "attention_probs_dropout_prob": m.attention_dropout,
        "max_position_embeddings": positions,
        "type_vocab_size": m.type_vocab,
        "initializer_range": m.init_std,
        "layer_norm_eps": m.layer_norm_eps,
        "pad_token_id": pad,
        "bos_token_id": tok.special.cls,
        "eos_token_id": tok.special.sep,
        "tie_word_embeddings": m.tie_word_embeddings,
    });
    if class == Class::Electra {
        v["embedding_size"] = m.hidden.into();
    }
    serde_json::to_string_pretty(&v).expect("a JSON value serialises")
}

/// The HF class a run exports as, and its tensors under the class's names.
impl Class {
    /// Decided by the norm placement and the objectives; refused where no HF class computes
    /// what the run does.
    fn of(cfg: &Experiment, ckpt: &Path) -> Result<Self> {
        let electra = cfg.objectives.iter().any(|o| o.name == "electra");
        match (cfg.model.norm, electra) {
            (NormKind::PostLn, false) => Ok(Class::Bert),
            (NormKind::PostLn, true) => Ok(Class::Electra),
            (NormKind::PreLn, false) => Ok(Class::RobertaPreLayerNorm),
            (NormKind::PreLn, true) => bail!(
                "{}: a pre-LN run trained with electra has no HF counterpart (HF's ELECTRA is \
                 post-LN); only post-LN ELECTRA runs export",
                ckpt.display()
            ),
            (other, _) => bail!(
                "{}: model.norm = \"{}\" has no HF counterpart; only post-LN (as BERT) and \
                 pre-LN (as RobertaPreLayerNorm) runs export",
                ckpt.display(),
                other.name()
            ),
        }
    }

    fn architectures(self) -> Vec<&'static str> {
        match self {
            Class::Bert => vec!["BertForPreTraining", "BertForMaskedLM"],
            Class::RobertaPreLayerNorm => vec![prelayernorm::ARCHITECTURE],
            Class::Electra => electra::ARCHITECTURES.to_vec(),
        }
    }

    /// The checkpoint's tensors under the class's names (`pad`, the tokenizer's padding id,
    /// places RobertaPreLayerNorm's positions), and ours that have no place in it.
    fn rename(self, tensors: Vec<Named>, pad: usize) -> (Vec<Named>, Vec<String>) {
        if self == Class::Electra {
            return electra::from_ours(tensors);
        }
        let mut renamed = Vec::new();
        let mut left = Vec::new();
        for (name, shape, values) in tensors {
            let hf = hf_pretraining_name(&name)
                .filter(|bert| self == Class::Bert || prelayernorm::from_bert(bert).is_some());
            match hf {
                Some(hf) => {
                    if hf == "cls.predictions.bias" && self == Class::Bert {
                        // HF ties the decoder's bias to this one; older versions read either.
                        renamed.push((
                            "cls.predictions.decoder.bias".into(),
                            shape.clone(),
                            values.clone(),
                        ));
                    }
                    renamed.push((hf, shape, values));
                }
                None => left.push(name),
            }
        }
        if self == Class::RobertaPreLayerNorm {
            renamed = prelayernorm::from_bert_tensors(renamed, pad).0;
        }
        (renamed, left)
    }
}

/// One token a line, in id order (BertTokenizer's vocab.txt).
fn vocab_txt(tok: &Tokenizer) -> String {
    (0..tok.vocab_size() as u32)
        .map(|i| tok.id_to_token(i).unwrap_or_else(|| format!("[unused{i}]")) + "\n")
        .collect()
}

fn tokenizer_config(cfg: &Experiment) -> String {
    let v = serde_json::json!({
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": cfg.tokenizer.lowercase,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "model_max_length": cfg.model.max_positions,
    });
    serde_json::to_string_pretty(&v).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::hf_pretraining_name as hf;

    #[test]
    fn names_follow_bert_for_pretraining() {
        let n = |s: &str| hf(s).unwrap();
        assert_eq!(
            n("embeddings.word.weight"),
            "bert.embeddings.word_embeddings.weight"
        );
        assert_eq!(
            n("encoder.layers.3.attn.q.weight"),
            "bert.encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(
            n("encoder.layers.0.ffn_norm.bias"),
            "bert.encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(n("pooler.dense.weight"), "bert.pooler.dense.weight");
        assert_eq!(
            n("heads.mlm.norm.weight"),
            "cls.predictions.transform.LayerNorm.weight"
        );
        assert_eq!(n("heads.mlm.bias"), "cls.predictions.bias");
        // An untied decoder (model.tie_word_embeddings = false) is HF's own decoder matrix.
        assert_eq!(
            n("heads.mlm.decoder.weight"),
            "cls.predictions.decoder.weight"
        );
        assert_eq!(
            n("heads.nsp.classifier.weight"),
            "cls.seq_relationship.weight"
        );
        assert_eq!(hf("heads.sop.classifier.weight"), None);
    }
}
