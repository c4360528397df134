//! `pretext gradnorms FILE`: the per-layer gradient norms of a grid's settings at
//! initialisation, as a table and a chart — the measurement behind Xiong et al.'s case for
//! pre-LN, kept apart from the grid runner it borrows its preparation from.

use crate::config::LoadedExperiment;
use crate::grid::{base_dir, refuse_what_cannot_fit};
use crate::{data, train};
use anyhow::{Context, Result};
use std::path::Path;

/// `pretext gradnorms FILE`: the gradient norm of every encoder layer at initialisation, for
/// the first seed of each setting of the grid, averaged over `batches` training batches
/// (Xiong et al. 2020, Figure 3: post-LN's gradients grow towards the last layer, pre-LN's
/// stay flat). Prints a table and writes `<out>/grad_norm_per_layer.{png,svg}`. Uses the
/// experiment's tokenizer in `<runs_dir>/<experiment>/` (trained there if missing).
pub fn layer_gradients(file: &Path, runs_dir: &Path, batches: usize, out: &Path) -> Result<()> {
    let exp = LoadedExperiment::load(file)?;
    refuse_what_cannot_fit(file, &exp)?;
    crate::files::need_folder(out, "--out")?;
    let base_dir = base_dir(file);
    let exp_dir = runs_dir.join(&exp.base.name);
    crate::files::need_folder(&exp_dir, "--runs-dir")?;
    let mut series: Vec<crate::report::axis::Series> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for spec in &exp.runs {
        let group = crate::report::runs::group_of(&spec.variant);
        if seen.contains(&group) {
            continue;
        }
        seen.push(group.clone());
        let cfg = &spec.config;
        let prepared = data::prepare(&cfg.data, &cfg.tokenizer, &base_dir, Some(&exp_dir))?;
        let mut trainer = train::Trainer::new(cfg, &prepared)?;
        let norms = trainer.layer_gradient_norms(batches)?;
        println!(
            "  {group:<40} {}",
            norms
                .iter()
                .map(|(n, v)| format!("{}={v:.3}", n.trim_start_matches("encoder.layers.")))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let points = norms
            .iter()
            .filter_map(|(n, v)| {
                let i: f64 = n.strip_prefix("encoder.layers.")?.parse().ok()?;
                Some((i, vec![*v], 0))
            })
            .collect();
        series.push(crate::report::axis::Series {
            label: group,
            points,
        });
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = out.join("grad_norm_per_layer");
    crate::report::axis::chart(
        &stem,
        "gradient norm per layer at initialisation",
        "layer",
        "gradient norm (all parameters of the layer)",
        &series,
    )?;
    println!("chart: {}", stem.with_extension("png").display());
    Ok(())
}
