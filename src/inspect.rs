//! `pretext validate` and `pretext list`: what an experiment file expands into (runs,
//! corpus files, parameter counts, memory estimates) and what the registries hold.

use crate::config::{LoadedExperiment, NormKind};
use crate::objectives::registry;
use crate::{finetune, grid};
use anyhow::{Context, Result};
use std::path::Path;

/// Prints the runs of `file`'s grid and refuses what cannot run here (a corpus pattern that
/// matches nothing, a run too large for the machine).
pub fn validate(file: &Path) -> Result<()> {
    let exp = LoadedExperiment::load(file)?;
    println!(
        "{}: experiment `{}`, {} run(s)",
        file.display(),
        exp.base.name,
        exp.runs.len()
    );
    // Patterns are expanded now, so one that matches nothing is named before any run starts.
    let mut seen: Vec<&Vec<String>> = Vec::new();
    for r in &exp.runs {
        let corpus = &r.config.data.corpus;
        if seen.contains(&corpus) {
            continue;
        }
        seen.push(corpus);
        let files = crate::data::sources::expand(corpus, &grid::base_dir(file))
            .with_context(|| format!("{}: key `data.corpus`", file.display()))?;
        println!(
            "  data.corpus: {} entr{} → {} file(s), format {:?}",
            corpus.len(),
            if corpus.len() == 1 { "y" } else { "ies" },
            files.len(),
            r.config.data.format
        );
    }
    // A `model.init` that names no checkpoint, or a source run with another tokenizer.
    for r in &exp.runs {
        if let Some(init) = grid::init_checkpoint(&r.config, &grid::base_dir(file))
            .with_context(|| format!("{}: run {}", file.display(), r.variant))?
        {
            println!(
                "  {}: starts from the encoder of {}",
                r.variant,
                init.path().display()
            );
        }
    }
    for (r, c) in exp
        .runs
        .iter()
        .zip(&grid::with_tokenizer_vocab(&exp, &grid::base_dir(file)))
    {
        let objs: Vec<String> = c
            .objectives
            .iter()
            .map(|o| format!("{}×{}", o.name, o.weight))
            .collect();
        let est = crate::config::memory::estimate(c);
        let length = match (&c.training.budget, c.training.steps) {
            (Some(b), crate::config::budget::NO_STEP_LIMIT) => format!("budget={b}"),
            (Some(b), steps) => format!("budget={b} steps≤{steps}"),
            (None, steps) => format!("steps={steps}"),
        };
        let length = match c.training.precision {
            crate::config::Precision::Fp32 => length,
            p => format!("{length} precision={}", p.name()),
        };
        println!(
            "  {:<32} norm={} L={} H={} A={} seed={} {} objectives=[{}] params={:.2}M memory≈{}",
            r.variant,
            c.model.norm.name(),
            c.model.layers,
            c.model.hidden,
            c.model.heads,
            c.training.seed,
            length,
            objs.join(", "),
            crate::objectives::registry::parameters(c, c.tokenizer.vocab_size) / 1e6,
            crate::config::memory::gib(est.total)
        );
    }
    grid::refuse_what_cannot_fit(file, &exp)
}

/// Prints the registered objectives, normalisations and downstream tasks.
pub fn list() {
    println!("objectives:");
    for e in registry::ENTRIES {
        println!("  {:<12} {}", e.name, e.summary);
    }
    println!("norms (model.norm):");
    for n in NormKind::ALL {
        println!("  {:<12} {}", n.name(), n.describe());
    }
    println!("downstream tasks ([[finetune]] task):");
    for t in finetune::task::all() {
        println!("  {:<12} {}", t.name, t.summary);
    }
}
