//! `training.budget`: a run bounded by training time rather than by steps, as Cramming
//! (Geiping & Goldstein 2022) bounds a BERT by a day on one GPU. The learning-rate schedule
//! then runs over the fraction of the budget spent, so a faster recipe takes more steps of
//! the same schedule instead of stopping half-way down it.
//!
//! The budget counts the seconds spent in training steps only: data preparation, held-out
//! evaluation and checkpoints are measurement and bookkeeping, so evaluating more often does
//! not change what a recipe reaches. Time spent before a kill counts after the resume (the
//! checkpoint holds it); the steps redone after a kill count again, as they were paid again.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `training.steps` a budgeted run gets when the file leaves `steps` out: no step limit.
pub const NO_STEP_LIMIT: u64 = i64::MAX as u64;

/// A training-time budget, written `"90s"`, `"45min"` or `"1.5h"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub seconds: f64,
    /// As the file wrote it, so the resolved settings repeat the user's words.
    text: String,
}

impl Budget {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let scale = match unit {
            "s" | "sec" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => f64::NAN,
        };
        let seconds = number.parse::<f64>().map(|n| n * scale).unwrap_or(f64::NAN);
        // A year bounds the budget so that no later arithmetic on it can overflow.
        if !(seconds > 0.0 && seconds <= 365.0 * 86_400.0) {
            return Err(format!(
                "expected a positive training time such as \"90s\", \"45min\" or \"1.5h\" (at most a year), got \"{text}\""
            ));
        }
        Ok(Self {
            seconds,
            text: t.to_string(),
        })
    }

    /// The fraction of the budget that `spent` seconds use, clamped to `[0, 1]`.
    pub fn fraction(&self, spent: f64) -> f64 {
        (spent / self.seconds).clamp(0.0, 1.0)
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Budget::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A budgeted run whose file leaves `training.steps` out trains until the budget is spent:
/// the step default (300) must not cut it short. Applied to the parsed document before it
/// becomes an [`Experiment`](super::Experiment), for the base file and every variant alike.
pub fn lift_step_limit(doc: &mut toml::Value) {
    let Some(training) = doc.get_mut("training").and_then(|t| t.as_table_mut()) else {
        return;
    };
    if training.contains_key("budget") && !training.contains_key("steps") {
        training.insert("steps".into(), toml::Value::Integer(NO_STEP_LIMIT as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_their_units_and_nonsense_is_refused() {
        assert_eq!(Budget::parse("90s").unwrap().seconds, 90.0);
        assert_eq!(Budget::parse("45min").unwrap().seconds, 2700.0);
        assert_eq!(Budget::parse("1.5h").unwrap().seconds, 5400.0);
        assert_eq!(Budget::parse(" 2 min ").unwrap().seconds, 120.0);
        for bad in [
            "", "60", "0s", "-5min", "1e999h", "3days", "h", "1.2.3s", "9000h",
        ] {
            let e = Budget::parse(bad).unwrap_err();
            assert!(e.contains(&format!("\"{bad}\"")), "{bad}: {e}");
        }
        assert_eq!(Budget::parse("10min").unwrap().fraction(150.0), 0.25);
        assert_eq!(Budget::parse("10min").unwrap().fraction(900.0), 1.0);
    }

    #[test]
    fn a_budget_without_steps_lifts_the_step_limit_and_one_with_steps_keeps_it() {
        let mut doc: toml::Value = toml::from_str("[training]\nbudget = \"1h\"\n").unwrap();
        lift_step_limit(&mut doc);
        assert_eq!(
            doc["training"]["steps"].as_integer(),
            Some(NO_STEP_LIMIT as i64)
        );
        let mut doc: toml::Value =
            toml::from_str("[training]\nbudget = \"1h\"\nsteps = 5\n").unwrap();
        lift_step_limit(&mut doc);
        assert_eq!(doc["training"]["steps"].as_integer(), Some(5));
        let mut doc: toml::Value = toml::from_str("[training]\nsteps = 5\n").unwrap();
        lift_step_limit(&mut doc);
        assert_eq!(doc["training"]["steps"].as_integer(), Some(5));
    }
}
