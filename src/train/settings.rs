//! What defines a pretraining run: its resolved settings as text (what `config.resolved.toml`
//! and every checkpoint hold), and the comparison that decides whether a checkpoint or a
//! finished run belongs to the settings a file gives now.

use crate::config::Experiment;

/// The settings a pretraining run is defined by, as `config.resolved.toml` and checkpoints
/// hold them. Downstream entries and cluster resources are left out: adding a task or more
/// time must not invalidate checkpoints or finished runs.
pub fn resolved_text(cfg: &Experiment) -> String {
    toml::to_string(&Experiment {
        finetune: vec![],
        slurm: None,
        ..cfg.clone()
    })
    .expect("the config serialises")
}

/// Where two resolved settings texts differ in a setting that changes what a run computes:
/// `(line, old line, new line)`, or `None` when they define the same run. The thread count
/// (`training.threads`) is a resource, not a setting: every kernel gives the same bits on any
/// number of threads (`tests/training.rs` resumes on another count and compares), so a run
/// may continue, or count as finished, on a machine with another number of cores.
pub fn settings_difference(old: &str, new: &str) -> Option<(usize, String, String)> {
    let mut section = "";
    for (i, (a, b)) in old.lines().zip(new.lines()).enumerate() {
        if a.starts_with('[') {
            section = a;
        }
        let resource =
            section == "[training]" && a.starts_with("threads = ") && b.starts_with("threads = ");
        if a != b && !resource {
            return Some((i + 1, a.to_string(), b.to_string()));
        }
    }
    let (n, m) = (old.lines().count(), new.lines().count());
    (n != m).then(|| {
        let line = n.min(m) + 1;
        let at = |t: &str| t.lines().nth(line - 1).unwrap_or("").to_string();
        (line, at(old), at(new))
    })
}
