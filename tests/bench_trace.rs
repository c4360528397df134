//! Issue 7: optimisations must not change what is computed. The first 20 losses of the
//! benchmark loop (a scaled-down reference shape, so that CI runs it in seconds) are compared
//! against a trace stored before any optimisation, within a float-reordering tolerance.
//! `PRETEXT_WRITE_TRACE=1 cargo test --test bench_trace` rewrites the trace: only do that for
//! a change that is meant to change the numbers, and say so in the commit.

use pretext::bench::{self, Shape};

const TRACE: &str = "tests/fixtures/bench_trace.json";

fn shape() -> Shape {
    Shape {
        layers: 2,
        hidden: 64,
        heads: 4,
        ffn: 256,
        vocab: 1024,
        seq: 64,
        batch: 8,
        ..bench::REFERENCE
    }
}

#[test]
fn first_20_losses_match_the_stored_trace() {
    let dir = std::env::temp_dir().join(format!("pretext-trace-{}", std::process::id()));
    let m = bench::run(&shape(), 0, 20, &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if std::env::var_os("PRETEXT_WRITE_TRACE").is_some() {
        std::fs::write(TRACE, serde_json::to_string_pretty(&m.losses).unwrap()).unwrap();
    }
    let stored: Vec<f64> = serde_json::from_str(&std::fs::read_to_string(TRACE).unwrap()).unwrap();
    assert_eq!(stored.len(), 20);
    // The loss must move (a trace of a loop that does not learn would prove nothing).
    assert!(stored[19] < stored[0] - 0.05, "{stored:?}");
    for (i, (a, b)) in m.losses.iter().zip(&stored).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs(),
            "step {}: loss {a} differs from the stored {b}",
            i + 1
        );
    }
}

/// Each shape `pretext bench --shape` offers is an experiment the config rules accept, with the
/// model it names (so a typo in a constant fails here, not in a user's benchmark).
#[test]
fn every_bench_shape_is_a_valid_experiment() {
    for s in [bench::SMALL, bench::REFERENCE, bench::LARGE] {
        let cfg = bench::experiment(&s, 1, 1).unwrap();
        assert_eq!(
            (
                cfg.model.layers,
                cfg.model.hidden,
                cfg.model.heads,
                cfg.model.ffn
            ),
            (s.layers, s.hidden, s.heads, s.ffn)
        );
        assert_eq!(
            (cfg.training.batch_size, cfg.training.seq_len),
            (s.batch, s.seq)
        );
    }
}
