//! `pretext sweep --slurm`: a Slurm job-array script with one array task per run of the grid.
//! Each task is `pretext run FILE --only VARIANT`, so a cluster run leaves the same run
//! directories as a local one and `pretext report` reads either. Tasks are resume-safe: a
//! requeued or resubmitted task continues its run from the last checkpoint, and a finished
//! run is skipped.

use crate::config::{LoadedExperiment, SlurmConfig};
use std::fmt::Write as _;
use std::path::Path;

/// Where things are, as absolute paths: the job runs in another shell on another node.
pub struct Paths<'a> {
    pub binary: &'a Path,
    pub experiment: &'a Path,
    pub workdir: &'a Path,
    pub runs_dir: &'a Path,
    pub reports_dir: &'a Path,
}

/// A word for a POSIX shell: single-quoted, with `'` spelled `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn q(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// The job-array script. `res` are the resources after flags were applied.
pub fn slurm_script(exp: &LoadedExperiment, res: &SlurmConfig, paths: &Paths) -> String {
    let name = &exp.base.name;
    let n = exp.runs.len();
    let logs = paths.runs_dir.join(name).join("slurm");
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# Written by `pretext sweep --slurm` for {}: {n} run(s), one array task each.",
        paths.experiment.display()
    );
    let _ = writeln!(
        s,
        "# Resume-safe: a requeued or resubmitted task continues from its last checkpoint;"
    );
    let _ = writeln!(
        s,
        "# finished runs are skipped. Submit with: sbatch <this file>"
    );
    let _ = writeln!(
        s,
        "#SBATCH --job-name={}",
        quote(&format!("pretext-{name}"))
    );
    let limit = if res.max_parallel > 0 {
        format!("%{}", res.max_parallel)
    } else {
        String::new()
    };
    let _ = writeln!(s, "#SBATCH --array=0-{}{limit}", n.saturating_sub(1));
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", res.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --mem={}", res.mem);
    let _ = writeln!(s, "#SBATCH --time={}", res.time);
    if let Some(p) = &res.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if res.gpus > 0 {
        let _ = writeln!(s, "#SBATCH --gres=gpu:{}", res.gpus);
    }
    let _ = writeln!(s, "#SBATCH --output={}/%x-%A_%a.out", logs.display());
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    let _ = writeln!(s, "#SBATCH --requeue");
    for line in &res.extra {
        let _ = writeln!(s, "#SBATCH {}", line.trim());
    }
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(s, "variants=(");
    for r in &exp.runs {
        let _ = writeln!(s, "  {}", quote(&r.variant));
    }
    let _ = writeln!(s, ")");
    let _ = writeln!(s, "cd {}", q(paths.workdir));
    let _ = writeln!(
        s,
        "exec {} run {} --only \"${{variants[$SLURM_ARRAY_TASK_ID]}}\" --runs-dir {} --reports-dir {} --no-report --quiet",
        q(paths.binary),
        q(paths.experiment),
        q(paths.runs_dir),
        q(paths.reports_dir)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b c"), r"'a'\''b c'");
    }

    #[test]
    fn one_array_task_per_variant_with_the_file_resources() {
        let text = "name = \"n\"\n[slurm]\npartition = \"gpu\"\ngpus = 1\nmax_parallel = 2\nextra = [\"--account=nlp\"]\n[ablation]\n\"training.seed\" = [1, 2, 3]\n";
        let exp = LoadedExperiment::from_str(text, Path::new("/x/e.toml")).unwrap();
        let res = exp.base.slurm.clone().unwrap();
        let p = Path::new;
        let script = slurm_script(
            &exp,
            &res,
            &Paths {
                binary: p("/bin/pretext"),
                experiment: p("/x/e.toml"),
                workdir: p("/x"),
                runs_dir: p("/x/runs"),
                reports_dir: p("/x/reports"),
            },
        );
        for line in [
            "#SBATCH --array=0-2%2",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=04:00:00",
            "#SBATCH --account=nlp",
            "#SBATCH --requeue",
            "#SBATCH --output=/x/runs/n/slurm/%x-%A_%a.out",
            "  'seed=1'",
            "  'seed=3'",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "missing `{line}` in\n{script}"
            );
        }
        assert!(script.contains("--only \"${variants[$SLURM_ARRAY_TASK_ID]}\""));
    }
}
