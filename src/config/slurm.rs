//! The rules of `[slurm]` resources (and of the `pretext sweep` flags that override them):
//! each value is written into an `#SBATCH` line of the generated script, so a value Slurm
//! cannot parse would only fail at `sbatch` time on the cluster, and a value with a line break
//! would put a line of its own into the script — a directive, or a shell command.

use super::SlurmConfig;

impl SlurmConfig {
    /// `(key, message)` for each value Slurm would refuse or that would break the script's
    /// lines; keys are the section's (`cpus_per_task`), the flags are the same words.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=100_000).contains(&self.cpus_per_task) {
            out.push((
                "cpus_per_task",
                format!("expected 1 to 100000, got {}", self.cpus_per_task),
            ));
        }
        for (key, v) in [("gpus", self.gpus), ("max_parallel", self.max_parallel)] {
            if v > 100_000 {
                out.push((key, format!("expected at most 100000, got {v}")));
            }
        }
        if !is_time(&self.time) {
            out.push((
                "time",
                format!(
                    "expected Slurm's MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got {:?}",
                    self.time
                ),
            ));
        }
        if !is_memory(&self.mem) {
            out.push((
                "mem",
                format!(
                    "expected a size as Slurm writes it (8G, 512M, 16000), got {:?}",
                    self.mem
                ),
            ));
        }
        if let Some(p) = &self.partition {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,".contains(c));
            if !ok {
                out.push((
                    "partition",
                    format!("expected partition names (letters, digits, - _ . ,), got {p:?}"),
                ));
            }
        }
        for line in &self.extra {
            if line.trim().is_empty() || line.contains(['\n', '\r']) {
                out.push((
                    "extra",
                    format!("expected one non-empty #SBATCH option per entry, got {line:?}"),
                ));
            }
        }
        out
    }
}

/// Slurm's time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, and
/// `UNLIMITED`.
fn is_time(s: &str) -> bool {
    let digits = |x: &str| !x.is_empty() && x.len() <= 6 && x.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    matches!(s, "UNLIMITED" | "infinite")
        || (days.is_none_or(digits)
            && (1..=3).contains(&parts.len())
            && parts.iter().all(|p| digits(p)))
}

/// A number with an optional unit: `8G`, `512M`, `16000` (megabytes), as `--mem` takes it
/// (`0`: all of a node's memory).
fn is_memory(s: &str) -> bool {
    let number = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let unit_len = s.len() - number.len();
    !number.is_empty()
        && number.len() <= 12
        && unit_len <= 1
        && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_formats_are_told_apart_from_what_sbatch_would_refuse() {
        for t in [
            "30",
            "30:00",
            "04:00:00",
            "2-00",
            "2-12:00",
            "1-00:00:00",
            "UNLIMITED",
        ] {
            assert!(is_time(t), "{t}");
        }
        for t in [
            "",
            "1:00; rm -rf /",
            "1:2:3:4",
            "a",
            "1-",
            "-1",
            "1:00\n#SBATCH x",
        ] {
            assert!(!is_time(t), "{t:?}");
        }
        for m in ["8G", "512M", "16000", "1T", "0"] {
            assert!(is_memory(m), "{m}");
        }
        for m in ["", "G", "8GB", "4G\n#SBATCH --wrap=x", "-1G", "8 G"] {
            assert!(!is_memory(m), "{m:?}");
        }
    }

    #[test]
    fn every_broken_value_is_named_by_its_key() {
        let bad = SlurmConfig {
            partition: Some("a b".into()),
            time: "soon".into(),
            cpus_per_task: 0,
            mem: "lots".into(),
            gpus: 1 << 40,
            max_parallel: 1 << 40,
            extra: vec!["--account=nlp\nrm -rf ~".into(), " ".into()],
        };
        let keys: Vec<&str> = bad.problems().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "cpus_per_task",
                "gpus",
                "max_parallel",
                "time",
                "mem",
                "partition",
                "extra",
                "extra"
            ]
        );
        assert!(SlurmConfig::default().problems().is_empty());
    }
}
