//! `[ablation]`: the axes of an experiment file (lists of values for dotted keys, and named
//! recipes that set several keys together) expanded into the grid of runs, each one named
//! after its values (`norm=pre-ln,seed=2`) and checked like a file of its own.

use super::{budget, find_key_line, preset, validate, ConfigError, ConfigErrors, Experiment};
use super::{Rules, RunSpec};
use std::path::Path;

/// The axis of named recipes: `[ablation.recipe.<name>]` tables of `"section.key" = value`
/// settings, applied together. One axis can then vary keys of several sections at once —
/// Cramming's recipes, or a leave-one-out ablation with one recipe per lever removed — where
/// the product of per-key axes would also run every mixture. An empty recipe is the file.
const RECIPE: &str = "recipe";

/// The recipes of `[ablation.recipe]` as axis values: `{ name, settings }` tables.
fn recipes(v: &toml::Value) -> Result<Vec<toml::Value>, (String, String)> {
    let usage = "holds named recipes: `[ablation.recipe.<name>]` tables of `\"section.key\" = value` settings";
    let named = match v {
        toml::Value::Table(t) if !t.is_empty() => t,
        _ => return Err((RECIPE.into(), usage.into())),
    };
    named
        .iter()
        .map(|(name, settings)| match settings {
            toml::Value::Table(s) => {
                let mut t = toml::Table::new();
                t.insert("name".into(), toml::Value::String(name.clone()));
                t.insert("settings".into(), toml::Value::Table(s.clone()));
                Ok(toml::Value::Table(t))
            }
            other => Err((
                format!("{RECIPE}.{name}"),
                format!(
                    "expected a table of settings, got the {} `{other}`",
                    other.type_str()
                ),
            )),
        })
        .collect()
}

/// Applies one recipe (a value of [`recipes`]) to the document of a variant.
fn apply_recipe(doc: &mut toml::Value, recipe: &toml::Value) -> Result<(), (String, String)> {
    let name = recipe["name"].as_str().unwrap_or_default();
    if let Some(settings) = recipe.get("settings").and_then(|s| s.as_table()) {
        for (path, value) in settings {
            set_path(doc, path, value.clone())
                .map_err(|m| (format!("{RECIPE}.{name}.{path}"), m))?;
        }
    }
    Ok(())
}

/// Flattens `[ablation]` into `(dotted path, values)` axes, in file order.
fn axes(
    table: &toml::Table,
    prefix: &str,
    out: &mut Vec<(String, Vec<toml::Value>)>,
) -> Result<(), (String, String)> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if key == RECIPE {
            out.push((key, recipes(v)?));
            continue;
        }
        match v {
            toml::Value::Table(t) => axes(t, &key, out)?,
            toml::Value::Array(vals) if !vals.is_empty() => out.push((key, vals.clone())),
            toml::Value::Array(_) => {
                return Err((key, "an ablation axis needs at least one value".into()))
            }
            other => {
                return Err((
                    key,
                    format!(
                        "an ablation axis is a list of values, got the single {} `{other}`",
                        other.type_str()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Sets `path` to `value`; a table value is merged into a table already there, so an axis
/// can vary several keys of one section together (`model = [{ norm = "pre-ln" }, …]`).
fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) -> Result<(), String> {
    let mut cur = root;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        cur = match cur {
            toml::Value::Table(t) => {
                if last {
                    match (t.get_mut(*seg), value) {
                        (Some(old @ toml::Value::Table(_)), toml::Value::Table(new)) => {
                            merge(old, new)
                        }
                        (_, value) => {
                            t.insert(seg.to_string(), value);
                        }
                    }
                    return Ok(());
                }
                t.entry(seg.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
            }
            toml::Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("`{seg}` indexes a list; expected a number"))?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| {
                    format!("index {idx} is out of range (the list has {len} entries)")
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(format!("`{seg}` is below a plain value, not a section")),
        };
    }
    Ok(())
}

/// Merges the keys of `from` into the table `into`, tables into tables, key by key.
fn merge(into: &mut toml::Value, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(old @ toml::Value::Table(_)), toml::Value::Table(new)) => merge(old, new),
            (_, v) => {
                if let toml::Value::Table(t) = into {
                    t.insert(k, v);
                }
            }
        }
    }
}

/// A value as it appears in a variant name: lists of objectives read `mlm+nsp`, a weight
/// other than 1 is kept (`contrastive*0.1`).
fn short_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(short_value).collect::<Vec<_>>().join("+"),
        toml::Value::Table(t) => match t.get("name") {
            Some(name) => {
                let mut s = short_value(name);
                if let Some(w) = t
                    .get("weight")
                    .filter(|w| w.as_float() != Some(1.0) && w.as_integer() != Some(1))
                {
                    s = format!("{s}*{}", short_value(w));
                }
                s
            }
            None => t
                .iter()
                .map(|(k, v)| format!("{k}-{}", short_value(v)))
                .collect::<Vec<_>>()
                .join("+"),
        },
        other => other.to_string(),
    }
}

/// `s` with every character a folder name should not hold replaced by `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=,+*".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The runs of the file `text` (already loaded as `base`): one per point of the product of
/// its `[ablation]` axes, the last axis varying fastest, each variant set on the file's own
/// TOML, then resolved, deserialised and checked like the file itself; or the file alone as
/// `base` when it has no axes.
pub(super) fn expand(
    text: &str,
    base: &Experiment,
    path: &Path,
    rules: Rules,
) -> Result<Vec<RunSpec>, ConfigErrors> {
    let err = |key: String, message: String| {
        ConfigErrors(vec![ConfigError {
            line: find_key_line(text, &key),
            file: path.into(),
            key,
            message,
        }])
    };
    let mut grid = Vec::new();
    axes(&base.ablation, "", &mut grid).map_err(|(k, m)| err(format!("ablation.{k}"), m))?;
    if grid.is_empty() {
        let mut config = base.clone();
        config.ablation.clear();
        return Ok(vec![RunSpec {
            variant: "base".into(),
            overrides: vec![],
            config,
        }]);
    }
    // Short names: the last path segment, unless two axes share it.
    let lasts: Vec<&str> = grid
        .iter()
        .map(|(k, _)| k.rsplit('.').next().unwrap_or(k))
        .collect();
    let label: Vec<String> = grid
        .iter()
        .zip(&lasts)
        .map(|((k, _), l)| {
            if lasts.iter().filter(|x| *x == l).count() > 1 {
                k.clone()
            } else {
                l.to_string()
            }
        })
        .collect();

    let mut raw: toml::Value =
        toml::from_str(text).map_err(|e| err(String::new(), e.message().to_string()))?;
    if let toml::Value::Table(t) = &mut raw {
        t.remove("ablation");
        t.insert("name".into(), toml::Value::String(base.name.clone()));
    }

    let total: usize = grid.iter().map(|(_, v)| v.len()).product();
    let mut runs = Vec::with_capacity(total);
    for flat in 0..total {
        let mut rem = flat;
        let mut overrides = Vec::new();
        // Last axis varies fastest, like nested loops written in file order.
        let mut picks = vec![0; grid.len()];
        for (a, (_, vals)) in grid.iter().enumerate().rev() {
            picks[a] = rem % vals.len();
            rem /= vals.len();
        }
        let mut doc = raw.clone();
        let mut name_parts = Vec::new();
        for (a, (key, vals)) in grid.iter().enumerate() {
            let v = vals[picks[a]].clone();
            if key == RECIPE {
                apply_recipe(&mut doc, &v).map_err(|(k, m)| err(format!("ablation.{k}"), m))?;
            } else {
                set_path(&mut doc, key, v.clone())
                    .map_err(|m| err(format!("ablation.{key}"), m))?;
            }
            name_parts.push(format!("{}={}", label[a], short_value(&v)));
            overrides.push((key.clone(), v));
        }
        let variant = sanitize(&name_parts.join(","));
        preset::apply(&mut doc).map_err(|(k, m)| err(k, format!("variant `{variant}`: {m}")))?;
        budget::lift_step_limit(&mut doc);
        let config: Experiment = serde_path_to_error::deserialize(doc).map_err(|e| {
            let at = e.path().to_string();
            err(
                format!(
                    "ablation.{}",
                    overrides
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                ),
                format!(
                    "variant `{variant}` is not a valid experiment: at `{at}`: {}",
                    e.into_inner()
                ),
            )
        })?;
        let mut problems = validate::check(&config);
        problems.extend(rules(&config));
        if let Some((k, m)) = problems.into_iter().next() {
            return Err(err(
                format!("ablation (variant `{variant}`)"),
                format!("`{k}`: {m}"),
            ));
        }
        // Two settings whose names differ only in characters a folder cannot hold would
        // train into one run directory, the second overwriting the first.
        if let Some(other) = runs.iter().find(|r: &&RunSpec| r.variant == variant) {
            let axis = other
                .overrides
                .iter()
                .zip(&overrides)
                .find(|(a, b)| a.1 != b.1)
                .map_or_else(String::new, |(a, _)| a.0.clone());
            return Err(err(
                format!("ablation.{axis}"),
                format!(
                    "two variants share the run directory `{variant}` (the same value twice, or \
                     values that differ only in characters a folder name cannot hold); make the \
                     values distinct"
                ),
            ));
        }
        runs.push(RunSpec {
            variant,
            overrides,
            config,
        });
    }
    Ok(runs)
}
