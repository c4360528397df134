//! The registry of pretraining objectives: the only place that lists them. The config
//! validator, the sampler (through `Needs`), the loop and `pretext list` all read it.
//!
//! Adding an objective: write `src/objectives/<name>.rs` with its options and head, then add
//! one `Entry` line below.

use super::contrastive::Contrastive;
use super::mlm::Mlm;
use super::nsp::Nsp;
use super::sentence_pair::PairHead;
use super::sop::Sop;
use super::{HeadDims, Objective};
use crate::config::memory::{encoder_parameters, mlm_head_parameters, pair_head_parameters};
use crate::config::Experiment;
use crate::data::{MaskingConfig, PairMode};
use crate::model::Dev;
use crate::rng::Rng;
use serde::de::DeserializeOwned;

/// What an objective needs from a batch, so the sampler only does the work a run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub mlm_labels: bool,
    pub pair: Option<PairMode>,
    /// Two dropout views of each sequence through the shared encoder.
    pub two_views: bool,
}

pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    pub needs: Needs,
    /// Checks the `options` table of an `[[objectives]]` entry.
    pub check_options: fn(&toml::Table) -> Result<(), String>,
    /// The masking its options ask for, when it reads masked positions (`needs.mlm_labels`):
    /// the sampler masks as the first such objective of a run says.
    pub masking: fn(&toml::Table) -> Option<MaskingConfig>,
    /// Builds the objective and its head from checked options.
    pub build: fn(&toml::Table, &HeadDims, &Dev, &mut Rng) -> Box<dyn Objective>,
    /// How many parameters `build` creates (`pretext validate` prints the run's total without
    /// building anything; `tests/parameter_count.rs` checks it against what is built).
    pub parameters: fn(&toml::Table, &HeadDims) -> f64,
}

/// Parses an options table into `T`, naming the offending option on failure.
pub fn parse_options<T: DeserializeOwned>(options: &toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(options.clone())).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.trim();
        if at == "." {
            inner.to_string()
        } else {
            format!("`{at}`: {inner}")
        }
    })
}

fn check_mlm(o: &toml::Table) -> Result<(), String> {
    parse_options::<MaskingConfig>(o)?.check()
}

fn check_none(o: &toml::Table) -> Result<(), String> {
    match o.keys().next() {
        None => Ok(()),
        Some(k) => Err(format!(
            "unknown option `{k}`: this objective takes no options"
        )),
    }
}

fn check_contrastive(o: &toml::Table) -> Result<(), String> {
    parse_options::<super::contrastive::ContrastiveOptions>(o)?.check()
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "mlm",
        summary: "masked language modelling: 15% of tokens, 80% [MASK] / 10% random / 10% kept; decoder tied to the word embeddings (model.tie_word_embeddings)",
        needs: Needs { mlm_labels: true, pair: None, two_views: false },
        check_options: check_mlm,
        masking: |o| parse_options(o).ok(),
        build: |_, d, dev, rng| Box::new(Mlm::new(dev, d, rng)),
        parameters: |_, d| mlm_head_parameters(d.hidden as f64, d.vocab as f64, d.tied_decoder),
    },
    Entry {
        name: "nsp",
        summary: "next sentence prediction: is segment B the true continuation (50%) or from another document?",
        needs: Needs { mlm_labels: false, pair: Some(PairMode::Nsp), two_views: false },
        check_options: check_none,
        masking: |_| None,
        build: |_, d, dev, rng| Box::new(Nsp(PairHead::new(dev, d, rng))),
        parameters: |_, d| pair_head_parameters(d.hidden as f64),
    },
    Entry {
        name: "sop",
        summary: "sentence order prediction (ALBERT): are the two contiguous segments in order or swapped?",
        needs: Needs { mlm_labels: false, pair: Some(PairMode::Sop), two_views: false },
        check_options: check_none,
        masking: |_| None,
        build: |_, d, dev, rng| Box::new(Sop(PairHead::new(dev, d, rng))),
        parameters: |_, d| pair_head_parameters(d.hidden as f64),
    },
    Entry {
        name: "contrastive",
        summary: "SimCSE-style siamese InfoNCE: two dropout views, in-batch negatives, cosine / temperature",
        needs: Needs { mlm_labels: false, pair: None, two_views: true },
        check_options: check_contrastive,
        masking: |_| None,
        build: |o, _, _, _| Box::new(Contrastive { options: parse_options(o).unwrap_or_default() }),
        parameters: |_, _| 0.0,
    },
    Entry {
        name: "electra",
        summary: "ELECTRA replaced token detection: the generator (an MLM head over the shared encoder) fills the masked positions by sampling, the discriminator tells every token original or replaced (options: discriminator_weight = 50, generator_size = a fraction for a narrower generator of its own, plus mlm's masking options)",
        needs: Needs { mlm_labels: true, pair: None, two_views: false },
        check_options: |o| super::electra::options(o).map(|_| ()),
        masking: |o| super::electra::options(o).ok().map(|(_, m)| m),
        build: |o, d, dev, rng| {
            let (settings, _) = super::electra::options(o).expect("checked by check_options");
            Box::new(super::electra::Electra::new(dev, d, &settings, rng))
        },
        parameters: |o, d| {
            let (settings, _) = super::electra::options(o).expect("checked by check_options");
            super::electra::parameters(d, &settings)
        },
    },
];

/// The masking of a run: as its first objective that reads masked positions says, or `None`
/// when none does (inputs stay uncorrupted).
pub fn masking<'a>(
    objectives: impl Iterator<Item = (&'a str, &'a toml::Table)>,
) -> Option<MaskingConfig> {
    objectives
        .filter_map(|(name, options)| {
            find(name)
                .filter(|e| e.needs.mlm_labels)
                .map(|e| (e, options))
        })
        .map(|(e, options)| (e.masking)(options).unwrap_or_default())
        .next()
}

/// The objectives' rules that need the registry — each name is registered, each entry
/// accepts its options — as `(key, message)`. The list's schema (weights, duplicates, pairs
/// that exclude each other) is `config`'s; `crate::experiment` runs both.
pub fn check(specs: &[crate::config::ObjectiveSpec]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let key = format!("objectives.{i}");
        match find(&spec.name) {
            None => out.push((
                format!("{key}.name"),
                format!(
                    "unknown objective `{}`; expected one of: {}",
                    spec.name,
                    names().join(", ")
                ),
            )),
            Some(entry) => {
                if let Err(msg) = (entry.check_options)(&spec.options) {
                    out.push((format!("{key}.options"), msg));
                }
            }
        }
    }
    out
}

pub fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}

pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

/// The trainable parameters of a run: the encoder and every objective's head (names and
/// options already validated), as `pretext validate` prints them.
pub fn parameters(cfg: &Experiment, vocab: usize) -> f64 {
    let dims = HeadDims::of(&cfg.model, vocab);
    let heads: f64 = cfg
        .objectives
        .iter()
        .filter_map(|o| find(&o.name).map(|e| (e.parameters)(&o.options, &dims)))
        .sum();
    encoder_parameters(&cfg.model, vocab as f64) + heads
}

/// The union of the needs of a run's objectives (names already validated).
pub fn combined_needs<'a>(names: impl Iterator<Item = &'a str>) -> Needs {
    let mut n = Needs {
        mlm_labels: false,
        pair: None,
        two_views: false,
    };
    for name in names {
        if let Some(e) = find(name) {
            n.mlm_labels |= e.needs.mlm_labels;
            n.pair = n.pair.or(e.needs.pair);
            n.two_views |= e.needs.two_views;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An objective that reads masked positions says how to mask; no other does.
    #[test]
    fn masking_is_given_exactly_by_the_objectives_that_need_mlm_labels() {
        for e in ENTRIES {
            let default = (e.masking)(&toml::Table::new());
            assert_eq!(default.is_some(), e.needs.mlm_labels, "{}", e.name);
        }
        let electra: toml::Table =
            toml::from_str("discriminator_weight = 5\nmask_prob = 0.3").unwrap();
        let sop = toml::Table::new();
        let run = [("sop", &sop), ("electra", &electra)];
        assert_eq!(masking(run.into_iter()).unwrap().mask_prob, 0.3);
        assert_eq!(masking([("sop", &sop)].into_iter()), None);
    }
}
