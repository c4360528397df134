//! `pretext fill TARGET "the [MASK] sat on the mat ."`: the `top_k` likeliest WordPiece tokens
//! for every [MASK], with their probabilities — BERT's "fill in the blank", as HF's
//! `fill-mask` pipeline gives it (every [MASK] predicted in one pass, all others visible).

use super::MaskedLm;
use anyhow::{bail, Result};
use serde::Serialize;

/// The candidates for one [MASK].
#[derive(Debug, Clone, Serialize)]
pub struct Blank {
    /// Which [MASK] of the text (0 = the first).
    pub mask: usize,
    /// Its position in the model's input ([CLS] is 0).
    pub position: usize,
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub token: String,
    pub id: u32,
    pub probability: f64,
}

/// The literal a user writes for a blank; matched without regard to case, so the lower-casing
/// tokenizer's `[mask]` works too.
pub const MASK: &str = "[MASK]";

/// Predicts every [MASK] of `text`.
pub fn fill(lm: &MaskedLm, text: &str, top_k: usize) -> Result<Vec<Blank>> {
    let tok = &lm.tokenizer;
    // Split at the literal ourselves: whether a tokenizer file matches "[MASK]" as one token
    // before normalisation depends on how it was saved.
    let lower = text.to_ascii_lowercase();
    let pieces: Vec<&str> = split_at_masks(text, &lower);
    if pieces.len() < 2 {
        bail!("no {MASK} in the text: write {MASK} where a word should be predicted, e.g. \"the {MASK} sat on the mat .\"");
    }
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            positions.push(ids.len() + 1); // +1: [CLS] comes first
            ids.push(tok.special.mask);
        }
        ids.extend(tok.encode(piece));
    }
    if ids.len() + 2 > lm.max_len() {
        bail!(
            "the text is {} tokens long with [CLS] and [SEP]; the model takes at most {} \
             (model.max_positions)",
            ids.len() + 2,
            lm.max_len()
        );
    }
    let batch = super::single(&ids, positions.clone(), tok);
    let rows = lm.log_probs(&batch)?;
    Ok(rows
        .iter()
        .zip(positions)
        .enumerate()
        .map(|(mask, (row, position))| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let candidates = order
                .into_iter()
                .take(top_k)
                .map(|id| Candidate {
                    token: tok
                        .id_to_token(id as u32)
                        .unwrap_or_else(|| format!("<{id}>")),
                    id: id as u32,
                    probability: row[id].exp(),
                })
                .collect();
            Blank {
                mask,
                position,
                candidates,
            }
        })
        .collect())
}

/// `text` cut at every case-insensitive [MASK] (`lower` is its ASCII lower-casing, whose byte
/// offsets are the same).
fn split_at_masks<'a>(text: &'a str, lower: &str) -> Vec<&'a str> {
    let needle = MASK.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = lower[start..].find(&needle) {
        out.push(&text[start..start + i]);
        start += i + needle.len();
    }
    out.push(&text[start..]);
    out
}

/// `pretext fill`: prints the candidates of every [MASK], as text or one JSON object.
pub fn command(
    target: &std::path::Path,
    text: &str,
    top_k: usize,
    tokenizer: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let lm = MaskedLm::load(target, tokenizer)?;
    let blanks = fill(&lm, text, top_k)?;
    if json {
        let out = serde_json::json!({
            "text": text,
            "checkpoint": lm.checkpoint,
            "step": lm.step,
            "masks": blanks,
        });
        println!("{out}");
    } else {
        println!("{}", describe(&blanks));
    }
    Ok(())
}

/// The printout: one line per [MASK].
pub fn describe(blanks: &[Blank]) -> String {
    blanks
        .iter()
        .map(|b| {
            let c: Vec<String> = b
                .candidates
                .iter()
                .map(|c| format!("{} {:.4}", c.token, c.probability))
                .collect();
            format!(
                "[MASK] {} (position {}): {}",
                b.mask + 1,
                b.position,
                c.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::split_at_masks;

    #[test]
    fn masks_are_found_whatever_their_case_and_place() {
        let t = "[MASK] sat on the [mask] .[Mask]";
        assert_eq!(
            split_at_masks(t, &t.to_ascii_lowercase()),
            vec!["", " sat on the ", " .", ""]
        );
        let t = "no blank here";
        assert_eq!(split_at_masks(t, t), vec!["no blank here"]);
        // Multi-byte text keeps its byte offsets under ASCII lower-casing.
        let t = "Ünïcode [MASK] ß";
        assert_eq!(
            split_at_masks(t, &t.to_ascii_lowercase()),
            vec!["Ünïcode ", " ß"]
        );
    }
}
