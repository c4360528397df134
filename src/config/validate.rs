//! Semantic checks that serde cannot express: cross-field constraints and value ranges.
//! Each check names the key it is about and what was expected.

use super::schema::Experiment;

/// `x > 0` and finite; written as a function so NaN (which fails every comparison) is refused.
fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

/// Returns `(key, message)` for every problem found.
pub fn check(e: &Experiment) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = |key: &str, msg: String| out.push((key.to_string(), msg));

    let m = &e.model;
    for (key, v) in [
        ("model.layers", m.layers),
        ("model.hidden", m.hidden),
        ("model.heads", m.heads),
        ("model.ffn", m.ffn),
        ("model.max_positions", m.max_positions),
    ] {
        if v == 0 {
            bad(key, "expected a positive integer, got 0".into());
        }
    }
    if m.heads > 0 && !m.hidden.is_multiple_of(m.heads) {
        bad(
            "model.hidden",
            format!(
                "expected a multiple of model.heads ({}), got {}",
                m.heads, m.hidden
            ),
        );
    }
    if m.init.is_some() && e.tokenizer.path.is_none() {
        bad(
            "model.init",
            "needs tokenizer.path: the source run's tokenizer (runs/<experiment>/tokenizer.json); \
             a tokenizer trained anew would give the encoder's embeddings other ids"
                .into(),
        );
    }
    if !(2..=1024).contains(&m.type_vocab) {
        bad(
            "model.type_vocab",
            format!(
                "expected 2 (segments A and B) to 1024, got {}",
                m.type_vocab
            ),
        );
    }
    for (key, v) in [
        ("model.dropout", m.dropout),
        ("model.attention_dropout", m.attention_dropout),
    ] {
        if !(0.0..1.0).contains(&v) {
            bad(key, format!("expected a probability in [0, 1), got {v}"));
        }
    }
    if !positive(m.layer_norm_eps as f64) {
        bad(
            "model.layer_norm_eps",
            format!("expected > 0, got {}", m.layer_norm_eps),
        );
    }
    if !(m.init_std > 0.0 && m.init_std.is_finite()) {
        bad(
            "model.init_std",
            format!("expected > 0, got {}", m.init_std),
        );
    }
    let p = &m.powernorm;
    if p.groups == 0 || (m.hidden > 0 && !m.hidden.is_multiple_of(p.groups)) {
        bad(
            "model.powernorm.groups",
            format!(
                "expected a positive divisor of model.hidden ({}), got {}",
                m.hidden, p.groups
            ),
        );
    }
    for (key, v) in [
        ("model.powernorm.alpha_fwd", p.alpha_fwd),
        ("model.powernorm.alpha_bkw", p.alpha_bkw),
    ] {
        if !(0.0..1.0).contains(&v) {
            bad(key, format!("expected a momentum in [0, 1), got {v}"));
        }
    }
    if !positive(p.eps as f64) {
        bad(
            "model.powernorm.eps",
            format!("expected > 0, got {}", p.eps),
        );
    }

    let t = &e.training;
    if m.max_positions < t.seq_len {
        bad(
            "model.max_positions",
            format!(
                "expected at least training.seq_len ({}), got {}",
                t.seq_len, m.max_positions
            ),
        );
    }
    // Zero steps only make sense from `model.init`: the run then holds that checkpoint,
    // scored on this experiment's held-out set, for `[[finetune]]` entries to start from.
    if t.steps == 0 && (m.init.is_none() || t.budget.is_some()) {
        bad(
            "training.steps",
            "expected a positive integer, got 0 (0 is for a run that only evaluates and \
             fine-tunes its model.init, without a training.budget)"
                .into(),
        );
    }
    for (key, v) in [
        ("training.batch_size", t.batch_size),
        ("training.grad_accum", t.grad_accum),
        ("training.log_every", t.log_every as usize),
    ] {
        if v == 0 {
            bad(key, "expected a positive integer, got 0".into());
        }
    }
    // Past these a step could never end (grad_accum micro-batches each) or a pool of threads
    // could not be made (it would fall back to another pool without saying so).
    for (key, v, max) in [
        ("training.grad_accum", t.grad_accum, 1_000_000),
        ("training.threads", t.threads, 4096),
        // Held-out batches are drawn once and kept: 32 sequences each.
        ("training.eval_batches", t.eval_batches, 10_000),
    ] {
        if v > max {
            bad(key, format!("expected at most {max}, got {v}"));
        }
    }
    if t.seq_len < 8 {
        bad(
            "training.seq_len",
            format!(
                "expected at least 8 ([CLS] A [SEP] B [SEP] needs room), got {}",
                t.seq_len
            ),
        );
    }
    if !(0.0..=1.0).contains(&t.short_seq_prob) {
        bad(
            "training.short_seq_prob",
            format!("expected a probability in [0, 1], got {}", t.short_seq_prob),
        );
    }

    let o = &e.optimizer;
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        bad(
            "optimizer.lr",
            format!("expected a positive learning rate, got {}", o.lr),
        );
    }
    for (i, b) in o.betas.iter().enumerate() {
        if !(0.0..1.0).contains(b) {
            bad(
                &format!("optimizer.betas.{i}"),
                format!("expected a value in [0, 1), got {b}"),
            );
        }
    }
    if !positive(o.eps) {
        bad("optimizer.eps", format!("expected > 0, got {}", o.eps));
    }
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        bad(
            "optimizer.weight_decay",
            format!("expected >= 0, got {}", o.weight_decay),
        );
    } else if o.lr * o.weight_decay >= 1.0 {
        // AdamW's decay scales each weight by 1 − lr · weight_decay every step.
        bad(
            "optimizer.weight_decay",
            format!(
                "expected optimizer.lr × weight_decay < 1 (each step scales the weights by \
                 1 − lr × weight_decay), got {} × {}",
                o.lr, o.weight_decay
            ),
        );
    }
    if !(o.clip >= 0.0 && o.clip.is_finite()) {
        bad(
            "optimizer.clip",
            format!("expected >= 0 (0 disables clipping), got {}", o.clip),
        );
    }
    if o.warmup_steps > t.steps {
        bad(
            "optimizer.warmup_steps",
            format!(
                "expected at most training.steps ({}), got {}",
                t.steps, o.warmup_steps
            ),
        );
    }

    let d = &e.data;
    if d.corpus.is_empty() {
        bad(
            "data.corpus",
            "expected at least one corpus file (or \"embedded\")".into(),
        );
    }
    if !(0.0..=0.5).contains(&d.heldout_fraction) {
        bad(
            "data.heldout_fraction",
            format!(
                "expected a fraction in [0, 0.5], got {}",
                d.heldout_fraction
            ),
        );
    }
    if d.min_sentences == 0 {
        bad("data.min_sentences", "expected at least 1".into());
    }
    if d.shard_tokens < 1000 {
        bad(
            "data.shard_tokens",
            format!(
                "expected at least 1000 tokens per shard, got {}",
                d.shard_tokens
            ),
        );
    }
    if d.cache_dir.is_some() && !d.cache {
        bad(
            "data.cache_dir",
            "is set but data.cache is false; set data.cache = true to use the shard cache".into(),
        );
    }
    if e.tokenizer.vocab_size > 4_000_000 {
        bad(
            "tokenizer.vocab_size",
            format!(
                "expected at most 4,000,000 (the largest vocabularies in use have ~250,000), got {}",
                e.tokenizer.vocab_size
            ),
        );
    }
    if e.tokenizer.path.is_none() && e.tokenizer.vocab_size < 50 {
        bad(
            "tokenizer.vocab_size",
            format!("expected at least 50, got {}", e.tokenizer.vocab_size),
        );
    }

    if e.objectives.is_empty() {
        bad("objectives", "expected at least one objective".into());
    }
    let mut seen = Vec::new();
    for (i, spec) in e.objectives.iter().enumerate() {
        let key = format!("objectives.{i}");
        if !(spec.weight >= 0.0 && spec.weight.is_finite()) {
            bad(
                &format!("{key}.weight"),
                format!("expected a finite weight >= 0, got {}", spec.weight),
            );
        }
        if seen.contains(&spec.name) {
            bad(
                &format!("{key}.name"),
                format!("objective `{}` is listed twice", spec.name),
            );
        }
        seen.push(spec.name.clone());
    }
    if !e.objectives.is_empty() && e.objectives.iter().all(|s| s.weight == 0.0) {
        bad(
            "objectives",
            "expected at least one objective with a weight > 0".into(),
        );
    }
    if seen.iter().any(|n| n == "nsp") && seen.iter().any(|n| n == "sop") {
        bad(
            "objectives",
            "nsp and sop both decide what segment B is (another document vs. swapped order); choose one".into(),
        );
    }
    if let Some(p) = &t.short_phase {
        if let Err(e) = p.check(t.seq_len) {
            bad("training.short_phase", e);
        }
    }
    if let Some(r) = &t.batch_ramp {
        if let Err(e) = r.check(t.batch_size) {
            bad("training.batch_ramp", e);
        }
    }
    let (key, smallest) = match &t.batch_ramp {
        Some(r) => ("training.batch_ramp.start", r.start),
        None => ("training.batch_size", t.batch_size),
    };
    if seen.iter().any(|n| n == "contrastive") && smallest < 2 {
        bad(
            key,
            "contrastive needs in-batch negatives: expected at least 2".into(),
        );
    }
    if !(t.rollback_lr_factor > 0.0 && t.rollback_lr_factor < 1.0) {
        bad(
            "training.rollback_lr_factor",
            format!(
                "expected a factor in (0, 1) that lowers the learning rate, got {}",
                t.rollback_lr_factor
            ),
        );
    }
    for (i, f) in e.finetune.iter().enumerate() {
        let key = |k: &str| format!("finetune.{i}.{k}");
        if e.finetune[..i].iter().any(|g| g.label() == f.label()) {
            bad(
                &key("name"),
                format!(
                    "another [[finetune]] entry is already called `{}`; give each entry of one task its own `name`",
                    f.label()
                ),
            );
        }
        if let Some(n) = &f.name {
            if n.is_empty() || n.contains(['/', '\\']) || n.starts_with('.') {
                bad(&key("name"), format!("expected a folder name, got `{n}`"));
            }
        }
        if f.data.trim().is_empty() {
            bad(&key("data"), "expected the path of the task's data".into());
        }
        for (k, v) in [
            ("epochs", f.epochs),
            ("batch_size", f.batch_size),
            ("doc_stride", f.doc_stride),
            ("max_query_len", f.max_query_len),
            ("max_answer_len", f.max_answer_len),
            ("dev_articles", f.dev_articles),
            ("log_every", f.log_every as usize),
        ] {
            if v == 0 {
                bad(&key(k), "expected a positive integer, got 0".into());
            }
        }
        // Beyond these a run could never end, and epochs × batches could overflow.
        for (k, v, max) in [
            ("epochs", f.epochs, 1_000_000),
            ("batch_size", f.batch_size, 1_000_000),
        ] {
            if v > max {
                bad(&key(k), format!("expected at most {max}, got {v}"));
            }
        }
        for (k, list) in [
            ("init", f.init.len()),
            ("mode", f.mode.len()),
            ("seeds", f.seeds.len()),
        ] {
            if list == 0 {
                bad(&key(k), "expected at least one value".into());
            }
        }
        for (k, v) in [("lr", &f.lr), ("probe_lr", &f.probe_lr)] {
            for &lr in v {
                if !positive(lr) {
                    bad(&key(k), format!("expected > 0, got {lr}"));
                }
            }
            let mut seen: Vec<f64> = Vec::new();
            for &lr in v {
                if seen.contains(&lr) {
                    bad(
                        &key(k),
                        format!("{lr} is listed twice; each rate is one run"),
                    );
                }
                seen.push(lr);
            }
        }
        if !(0.0..0.5).contains(&f.select_fraction) {
            bad(
                &key("select_fraction"),
                format!(
                    "expected a share of train in [0, 0.5), got {}",
                    f.select_fraction
                ),
            );
        }
        if !(0.0..1.0).contains(&f.warmup_fraction) {
            bad(
                &key("warmup_fraction"),
                format!("expected a fraction in [0, 1), got {}", f.warmup_fraction),
            );
        }
        for (k, v) in [("weight_decay", f.weight_decay), ("clip", f.clip)] {
            if !(v >= 0.0 && v.is_finite()) {
                bad(&key(k), format!("expected ≥ 0, got {v}"));
            }
        }
    }
    if let Some(s) = &e.slurm {
        for (k, m) in s.problems() {
            bad(&format!("slurm.{k}"), m);
        }
    }
    out
}
