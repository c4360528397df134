//! Downstream metrics exactly as the benchmarks define them: GLUE's accuracy, F1 (positive
//! class 1), Matthews correlation (CoLA), Pearson and Spearman (STS-B), and SQuAD's exact
//! match and token F1 after the official answer normalisation (evaluate-v1.1.py).

/// Fraction of `pred[i] == gold[i]`.
pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

fn confusion(pred: &[usize], gold: &[usize]) -> (f64, f64, f64, f64) {
    let (mut tp, mut tn, mut fp, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &g) in pred.iter().zip(gold) {
        match (p == 1, g == 1) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    (tp, tn, fp, fn_)
}

/// F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP; 0 when there
/// are no true positives (sklearn's convention).
pub fn f1(pred: &[usize], gold: &[usize]) -> f64 {
    let (tp, _, fp, fn_) = confusion(pred, gold);
    if tp == 0.0 {
        return 0.0;
    }
    2.0 * tp / (2.0 * tp + fp + fn_)
}

/// Matthews correlation of binary labels; 0 when a marginal is empty (sklearn's convention,
/// which is what GLUE's CoLA score uses).
pub fn matthews(pred: &[usize], gold: &[usize]) -> f64 {
    let (tp, tn, fp, fn_) = confusion(pred, gold);
    let denom = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fn_) / denom
    }
}

/// Pearson's r; 0 when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return 0.0;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks starting at 1, ties sharing their mean rank (scipy's `rankdata(method="average")`).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's ρ: Pearson's r of the tie-averaged ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// SQuAD's answer normalisation, as the official v1.1 evaluation script does it: lower case,
/// drop ASCII punctuation, replace the articles a/an/the by a space where they stand as whole
/// words (between non-word characters, as Python's `\b(a|an|the)\b` matches them: so `“the`
/// loses its article, which a whitespace split would keep), then collapse whitespace.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: Vec<char> = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // Python's `\w`: letters, digits and the underscore.
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(no_punct.len());
    let mut i = 0;
    while i < no_punct.len() {
        if !word(no_punct[i]) {
            out.push(no_punct[i]);
            i += 1;
            continue;
        }
        let end = (i..no_punct.len())
            .find(|&j| !word(no_punct[j]))
            .unwrap_or(no_punct.len());
        let run: String = no_punct[i..end].iter().collect();
        if matches!(run.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    tokens(&out).join(" ")
}

/// Python's `str.split()`: Unicode whitespace, plus the four ASCII separators (0x1C–0x1F)
/// that Python counts and Rust's `split_whitespace` does not.
fn tokens(s: &str) -> Vec<&str> {
    s.split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
        .filter(|t| !t.is_empty())
        .collect()
}

/// 1 if the normalised strings are equal.
pub fn exact_match(pred: &str, gold: &str) -> f64 {
    f64::from(u8::from(normalize_answer(pred) == normalize_answer(gold)))
}

/// Token-overlap F1 of the normalised answers (bag of tokens, counts clipped). As in the
/// official v1.1 script, no common token scores 0, also when both answers normalise to
/// nothing (v2.0's script would score that 1; pretext scores answerable questions only).
pub fn span_f1(pred: &str, gold: &str) -> f64 {
    let p = normalize_answer(pred);
    let g = normalize_answer(gold);
    let p = tokens(&p);
    let g = tokens(&g);
    let mut counts = std::collections::HashMap::new();
    for t in &g {
        *counts.entry(*t).or_insert(0i32) += 1;
    }
    let mut same = 0;
    for t in &p {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// SQuAD scores one prediction against several gold answers by the best of them.
pub fn best_over<F: Fn(&str, &str) -> f64>(metric: F, pred: &str, golds: &[String]) -> f64 {
    golds.iter().map(|g| metric(pred, g)).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_match_hand_counts() {
        // tp = 2, tn = 1, fp = 1, fn = 1
        let gold = [1, 1, 1, 0, 0];
        let pred = [1, 1, 0, 1, 0];
        assert!((accuracy(&pred, &gold) - 0.6).abs() < 1e-12);
        assert!((f1(&pred, &gold) - 4.0 / 6.0).abs() < 1e-12);
        // (2·1 − 1·1) / sqrt(3·3·2·2) = 1/6
        assert!((matthews(&pred, &gold) - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(matthews(&[1, 1, 1], &[1, 0, 1]), 0.0);
        assert_eq!(matthews(&[0, 1, 0, 1], &[1, 0, 1, 0]), -1.0);
    }

    #[test]
    fn correlations_match_hand_values() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 4.0, 5.0, 9.0];
        // means 2.5 and 5; sxy = 11, sxx = 5, syy = 26
        assert!((pearson(&x, &y) - 11.0 / (5.0f64 * 26.0).sqrt()).abs() < 1e-12);
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        // Ties: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4] → r = 4.5 / sqrt(4.5·5)
        let s = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((s - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn squad_normalisation_and_scores() {
        assert_eq!(normalize_answer("The  Norman's, Army!"), "normans army");
        assert_eq!(exact_match("the France", "France."), 1.0);
        assert_eq!(exact_match("in France", "France"), 0.0);
        // pred {in, northern, france}, gold {northern, france}: p = 2/3, r = 1 → 0.8
        assert!((span_f1("in northern France", "Northern France") - 0.8).abs() < 1e-12);
        // Both empty after normalisation: exact match, but no common token (v1.1's F1).
        assert_eq!(exact_match("a", "the"), 1.0);
        assert_eq!(span_f1("a", "the"), 0.0);
        // Articles go between any non-word characters, as Python's \b finds them.
        assert_eq!(normalize_answer("“The Dog”"), "“ dog”");
        assert_eq!(normalize_answer("the—a man"), "— man");
        assert_eq!(normalize_answer("theatre an_x"), "theatre anx");
        assert_eq!(normalize_answer("café\x1fthe end"), "café end");
        assert_eq!(span_f1("Paris", "France"), 0.0);
        let golds = vec!["10th century".to_string(), "the 10th".to_string()];
        assert_eq!(best_over(exact_match, "10th", &golds), 1.0);
    }
}
