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
