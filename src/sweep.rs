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

/// `program` and `words` as one line to paste into a POSIX shell: plain words as they are,
/// the others (spaces, quotes, non-ASCII, empty) quoted.
pub fn shell_line(program: &str, words: impl Iterator<Item = String>) -> String {
    let mut line = program.to_string();
    for w in words {
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
        line.push(' ');
        line.push_str(&if plain { w } else { quote(&w) });
    }
    line
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
    fn printed_command_lines_quote_what_a_shell_would_split() {
        let words = ["run", "my exp.toml", "--runs-dir", "données", "", "a=b,c"];
        assert_eq!(
            shell_line("pretext", words.iter().map(|w| w.to_string())),
            "pretext run 'my exp.toml' --runs-dir 'données' '' a=b,c"
        );
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

/// What `pretext sweep --slurm` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub file: std::path::PathBuf,
    /// The file's `[slurm]` section after the command line's overrides.
    pub resources: SlurmConfig,
    pub runs_dir: std::path::PathBuf,
    pub reports_dir: std::path::PathBuf,
    /// The script's path (default: `<runs-dir>/<experiment>/slurm/sweep.sbatch`).
    pub out: Option<std::path::PathBuf>,
    /// Submit the script, and a report job that runs after it.
    pub submit: bool,
}

/// Writes the job-array script (after training the shared tokenizer once, here: array tasks
/// starting together must not each train one) and, when asked, submits it.
pub fn write_and_submit(r: &Request) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let exp = LoadedExperiment::load(&r.file)?;
    // The file's section was checked as it loaded; the flags put over it are checked here,
    // before anything is prepared or written.
    let problems = r.resources.problems();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|(k, m)| format!("--{} (or slurm.{k}): {m}", k.replace('_', "-")))
            .collect();
        anyhow::bail!("{}", lines.join("\n"));
    }
    crate::grid::refuse_runs_dir_in_a_run(&r.runs_dir)?;
    let abs = |p: &Path| -> anyhow::Result<std::path::PathBuf> {
        std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
    };
    let runs_dir = abs(&r.runs_dir)?;
    let exp_dir = runs_dir.join(&exp.base.name);
    let slurm_dir = exp_dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("cannot create {}", slurm_dir.display()))?;
    let base_dir = crate::grid::base_dir(&r.file);
    if let Some(first) = exp.runs.first() {
        crate::grid::prepare_shared(first, &base_dir, &exp_dir)?;
    }
    let binary = std::env::current_exe().context("locating the pretext binary")?;
    let reports_dir = abs(&r.reports_dir)?;
    let script = slurm_script(
        &exp,
        &r.resources,
        &Paths {
            binary: &binary,
            experiment: &abs(&r.file)?,
            workdir: &abs(Path::new("."))?,
            runs_dir: &runs_dir,
            reports_dir: &reports_dir,
        },
    );
    let out = r
        .out
        .clone()
        .unwrap_or_else(|| slurm_dir.join("sweep.sbatch"));
    crate::rundir::refuse_overwriting_input(&out, std::slice::from_ref(&r.file))
        .map_err(anyhow::Error::msg)?;
    crate::rundir::write_atomically(&out, script.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} run(s) → {}\n  submit: sbatch {}\n  then:   pretext report {}",
        r.file.display(),
        exp.runs.len(),
        out.display(),
        q(&out),
        q(&exp_dir)
    );
    if !r.submit {
        return Ok(());
    }
    let id = sbatch(&["--parsable", &out.to_string_lossy()])?;
    let id = id.split(';').next().unwrap_or(&id).to_string();
    let report = format!(
        "{} report {} --out {}",
        q(&binary),
        q(&exp_dir),
        q(&reports_dir.join(&exp.base.name))
    );
    let rid = sbatch(&[
        "--parsable",
        &format!("--dependency=afterany:{id}"),
        "--job-name=pretext-report",
        &format!("--output={}/report-%j.out", slurm_dir.display()),
        "--wrap",
        &report,
    ])?;
    println!("submitted: array job {id}, report job {rid} after it");
    Ok(())
}

fn sbatch(args: &[&str]) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let o = std::process::Command::new("sbatch")
        .args(args)
        .output()
        .context("running sbatch (is Slurm installed here?)")?;
    if !o.status.success() {
        anyhow::bail!(
            "sbatch failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}
