//! Size presets (`model.preset`): the BERT sizes of Devlin et al. 2019 (base, large) and the
//! small ones of Turc et al. 2019 ("Well-Read Students Learn Better"): layers, hidden size,
//! heads (hidden / 64), feed-forward size (4 × hidden) and 512 positions. A preset fills the
//! `[model]` keys the file does not set, so any of them can be overridden key by key, and a
//! grid can sweep `"model.preset"` like any other key.

/// `(name, layers, hidden)`; heads, ffn and max_positions follow from them.
pub const PRESETS: &[(&str, i64, i64)] = &[
    ("bert-tiny", 2, 128),
    ("bert-mini", 4, 256),
    ("bert-small", 4, 512),
    ("bert-medium", 8, 512),
    ("bert-base", 12, 768),
    ("bert-large", 24, 1024),
];

/// Fills `[model]` of an experiment document from its `model.preset`, leaving the keys it
/// sets alone. An unknown preset is an error naming the known ones.
pub fn apply(doc: &mut toml::Value) -> Result<(), (String, String)> {
    let Some(model) = doc.get_mut("model").and_then(toml::Value::as_table_mut) else {
        return Ok(());
    };
    let Some(name) = model.get("preset") else {
        return Ok(());
    };
    let Some(name) = name.as_str() else {
        return Err((
            "model.preset".into(),
            format!("expected a string, got {}", name.type_str()),
        ));
    };
    let Some(&(_, layers, hidden)) = PRESETS.iter().find(|p| p.0 == name) else {
        let known: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
        return Err((
            "model.preset".into(),
            format!("unknown preset `{name}`; known: {}", known.join(", ")),
        ));
    };
    for (key, value) in [
        ("layers", layers),
        ("hidden", hidden),
        ("heads", hidden / 64),
        ("ffn", 4 * hidden),
        ("max_positions", 512),
    ] {
        model
            .entry(key)
            .or_insert_with(|| toml::Value::Integer(value));
    }
    Ok(())
}
