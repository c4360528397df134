//! Scores of sentence embeddings on STS pairs, without training: how well cosine similarity
//! ranks the pairs (Spearman, Pearson against the gold scores) and the geometry that Wang &
//! Isola (2020) and SimCSE (Gao et al. 2021, §5 and Figure 2) read contrastive learning by —
//! *alignment* (paired sentences close) and *uniformity* (all sentences spread over the
//! sphere); lower is better for both.

use super::metrics;

/// STS pairs whose gold score (0–5) is at least this count as paraphrases for alignment,
/// as in SimCSE's evaluation of STS-B (scores above 4).
pub const POSITIVE_SCORE: f64 = 4.0;

/// Spearman and Pearson of the pairs' cosine against `gold`, then alignment and uniformity
/// (`alignment` only when some pair reaches [`POSITIVE_SCORE`]).
pub fn scores(a: &[Vec<f32>], b: &[Vec<f32>], gold: &[f64]) -> Vec<(String, f64)> {
    let (ua, ub): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (unit(a), unit(b));
    let cos: Vec<f64> = ua.iter().zip(&ub).map(|(x, y)| dot(x, y)).collect();
    let mut out = vec![
        ("spearman".to_string(), metrics::spearman(&cos, gold)),
        ("pearson".to_string(), metrics::pearson(&cos, gold)),
    ];
    let positives: Vec<(&[f64], &[f64])> = ua
        .iter()
        .zip(&ub)
        .zip(gold)
        .filter(|(_, g)| **g >= POSITIVE_SCORE)
        .map(|((x, y), _)| (x.as_slice(), y.as_slice()))
        .collect();
    if let Some(al) = alignment(&positives) {
        out.push(("alignment".to_string(), al));
    }
    let all: Vec<Vec<f64>> = ua.into_iter().chain(ub).collect();
    if let Some(un) = uniformity(&all) {
        out.push(("uniformity".to_string(), un));
    }
    out
}

/// Mean squared distance between the unit embeddings of paired sentences (Wang & Isola's
/// ℓ_align with α = 2); `None` without pairs.
pub fn alignment(pairs: &[(&[f64], &[f64])]) -> Option<f64> {
    (!pairs.is_empty())
        .then(|| pairs.iter().map(|(x, y)| dist2(x, y)).sum::<f64>() / pairs.len() as f64)
}

/// log of the mean of exp(−2‖x − y‖²) over all pairs of distinct unit embeddings (Wang &
/// Isola's ℓ_uniform with t = 2): 0 when every sentence maps to one point, lower as they spread;
/// `None` with fewer than two.
pub fn uniformity(units: &[Vec<f64>]) -> Option<f64> {
    let n = units.len();
    if n < 2 {
        return None;
    }
    // Each term lies in [e^-8, 1] for unit vectors, so the plain mean cannot underflow.
    let sum: f64 = (0..n)
        .map(|i| {
            (i + 1..n)
                .map(|j| (-2.0 * dist2(&units[i], &units[j])).exp())
                .sum::<f64>()
        })
        .sum();
    Some((sum / (n * (n - 1) / 2) as f64).ln())
}

fn unit(rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| {
            let r: Vec<f64> = r.iter().map(|&v| v as f64).collect();
            let norm = dot(&r, &r).sqrt().max(1e-12);
            r.iter().map(|v| v / norm).collect()
        })
        .collect()
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(p, q)| p * q).sum()
}

fn dist2(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_hand_values() {
        // Orthonormal sentences: every distance² is 2, so uniformity is ln e^-4 = -4.
        let basis = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        assert!((uniformity(&basis).unwrap() + 4.0).abs() < 1e-12);
        // One point for every sentence: uniformity 0 (the worst), alignment 0 (the best).
        let same = vec![vec![0.6, 0.8]; 4];
        assert!(uniformity(&same).unwrap().abs() < 1e-12);
        assert_eq!(alignment(&[(&same[0], &same[1])]), Some(0.0));
        // Opposite unit vectors: distance² 4.
        let (x, y) = ([1.0, 0.0], [-1.0, 0.0]);
        assert_eq!(alignment(&[(&x, &y), (&x, &x)]), Some(2.0));
        assert_eq!(uniformity(&basis[..1]), None);
        assert_eq!(alignment(&[]), None);
    }

    #[test]
    fn scores_normalise_and_pick_the_paraphrases() {
        // Scale does not matter (cosine); only the pair with gold 5 counts for alignment.
        let a = vec![vec![2.0f32, 0.0], vec![0.0, 3.0], vec![1.0, 1.0]];
        let b = vec![vec![5.0f32, 0.0], vec![3.0, 0.0], vec![-1.0, 1.0]];
        let s = scores(&a, &b, &[5.0, 1.0, 2.0]);
        let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("alignment"), Some(0.0));
        // cosines 1, 0, 0 against gold 5, 1, 2: ranks (3, 1.5, 1.5) vs (3, 1, 2).
        assert!((get("spearman").unwrap() - 0.866_025_403_784_438_6).abs() < 1e-9);
        assert!(get("uniformity").unwrap() < 0.0);
        assert_eq!(
            scores(&a, &b, &[1.0, 1.0, 1.0]).len(),
            3,
            "no paraphrase, no alignment"
        );
    }
}
