//! Issue 2's masking: BERT's 80/10/10 statistics, special tokens never masked, whole words
//! masked whole, and ALBERT's n-gram spans at their lengths' rates.

mod common;

use common::embedded::stream;
use pretext::data::instances::PairMode;
use pretext::data::MaskingConfig;

#[test]
fn masking_statistics_match_bert_on_100k_tokens() {
    let (tok, mut bs) = stream(PairMode::Sop, Some(MaskingConfig::default()), 7);
    let sp = tok.special;
    let (mut candidates, mut chosen, mut as_mask, mut as_random, mut kept) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    while candidates < 100_000 {
        let b = bs.next_batch(32).unwrap();
        for (i, &m) in b.attention_mask.iter().enumerate() {
            let t = b.input_ids[i];
            if m > 0.0 && t != sp.cls && t != sp.sep {
                candidates += 1;
            }
        }
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            chosen += 1;
            let now = b.input_ids[p];
            if now == sp.mask {
                as_mask += 1;
            } else if now == label {
                kept += 1;
            } else {
                as_random += 1;
            }
        }
    }
    let rate = chosen as f64 / candidates as f64;
    assert!((rate - 0.15).abs() < 0.01, "masked share {rate}");
    let f = |n: usize| n as f64 / chosen as f64;
    assert!(
        (f(as_mask) - 0.8).abs() < 0.01,
        "[MASK] share {}",
        f(as_mask)
    );
    assert!(
        (f(as_random) - 0.1).abs() < 0.01,
        "random share {}",
        f(as_random)
    );
    assert!((f(kept) - 0.1).abs() < 0.01, "kept share {}", f(kept));
}

#[test]
fn special_tokens_are_never_masked_and_labels_are_real_tokens() {
    let (tok, mut bs) = stream(
        PairMode::Nsp,
        Some(MaskingConfig {
            whole_word: true,
            ..Default::default()
        }),
        3,
    );
    let sp = tok.special;
    for _ in 0..50 {
        let b = bs.next_batch(16).unwrap();
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            assert!(b.attention_mask[p] > 0.0, "masked a padding position");
            assert!(p % b.seq_len != 0, "masked [CLS]");
            assert!(
                !sp.contains(label) || label == sp.unk,
                "label {label} is a special token"
            );
        }
        // Every [CLS]/[SEP]/[PAD] in the input is where the instance put it: row starts with
        // [CLS], and no predicted position holds a special token's original.
        for row in 0..b.size {
            assert_eq!(b.input_ids[row * b.seq_len], sp.cls);
        }
    }
}

#[test]
fn whole_word_masking_masks_all_pieces_of_a_word() {
    let (tok, mut bs) = stream(
        PairMode::Single,
        Some(MaskingConfig {
            whole_word: true,
            ..Default::default()
        }),
        11,
    );
    let mut checked = 0;
    for _ in 0..40 {
        let b = bs.next_batch(16).unwrap();
        let chosen: std::collections::HashSet<usize> = b.mlm_positions.iter().copied().collect();
        for (&p, &label) in b.mlm_positions.iter().zip(&b.mlm_labels) {
            // A chosen continuation piece implies its predecessor was chosen too.
            if tok.is_continuation(label) {
                assert!(
                    chosen.contains(&(p - 1)),
                    "## piece masked without its word start"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "the corpus produced no multi-piece words; the test would prove nothing"
    );
}

/// ALBERT's n-gram masking (`max_ngram = 3`): spans of n units with probability
/// `(1/n) / (1 + 1/2 + 1/3)` = 6/11, 3/11, 2/11, at the same masked share as single tokens.
/// One long sequence at a 5 % rate: two spans rarely touch, so runs of consecutive masked
/// positions are spans, and the budget's last few slots barely bias the lengths.
#[test]
fn ngram_masking_draws_albert_span_lengths_at_the_same_rate() {
    use pretext::data::masking::mask_tokens;
    use pretext::data::Special;
    use rand::{Rng, SeedableRng};
    let cfg = MaskingConfig {
        mask_prob: 0.05,
        max_ngram: 3,
        ..Default::default()
    };
    let special = Special {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let n = 200_000;
    let mut tokens: Vec<u32> = (0..n).map(|_| rng.gen_range(5..1000)).collect();
    let masked = mask_tokens(&mut tokens, &cfg, &special, 1000, &|_| false, &mut rng);
    let rate = masked.positions.len() as f64 / n as f64;
    assert!((rate - 0.05).abs() < 0.001, "masked share {rate}");
    let mut runs = [0usize; 8];
    let mut run = 0;
    for (k, &p) in masked.positions.iter().enumerate() {
        run += 1;
        if masked.positions.get(k + 1) != Some(&(p + 1)) {
            runs[run.min(7)] += 1;
            run = 0;
        }
    }
    let spans: usize = runs.iter().sum();
    let share = |n: usize| runs[n] as f64 / spans as f64;
    for (n, want) in [(1, 6.0 / 11.0), (2, 3.0 / 11.0), (3, 2.0 / 11.0)] {
        assert!(
            (share(n) - want).abs() < 0.03,
            "spans of {n}: {} of runs, want {want}; runs {runs:?}",
            share(n)
        );
    }
    assert!(
        runs[4..].iter().sum::<usize>() * 20 < spans,
        "runs {runs:?}"
    );
    // Without n-grams the same draw masks single tokens: runs of two are chance adjacencies.
    let single = MaskingConfig {
        max_ngram: 1,
        ..cfg
    };
    let mut tokens: Vec<u32> = (0..n).map(|_| rng.gen_range(5..1000)).collect();
    let masked = mask_tokens(&mut tokens, &single, &special, 1000, &|_| false, &mut rng);
    let adjacent = masked
        .positions
        .windows(2)
        .filter(|w| w[1] == w[0] + 1)
        .count();
    assert!((adjacent as f64 / masked.positions.len() as f64) < 0.07);
}

#[test]
fn max_ngram_outside_its_range_is_refused() {
    for n in [0usize, 11] {
        let cfg = MaskingConfig {
            max_ngram: n,
            ..Default::default()
        };
        assert!(cfg.check().unwrap_err().contains("max_ngram"));
    }
}
