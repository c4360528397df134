#!/usr/bin/env python3
"""SQuAD v1.1 exact match and F1 of a predictions file, computed as the official
`evaluate-v1.1.py` computes them (written from its published definition, independently of
pretext): normalise by lower-casing, removing ASCII punctuation, replacing the articles
a/an/the (regex \\b(a|an|the)\\b) by a space and collapsing whitespace; exact match and
token-bag F1 against every gold answer, the best of them per question; percentages.

    python benches/squad_eval.py DATASET.json PREDICTIONS.json [--predicted-only] [--summary S]

The official script scores every question of DATASET (an unanswered one counts 0). pretext
fine-tunes on some articles and scores the others, so --predicted-only scores the questions
that have a prediction. --summary compares with a pretext fine-tuning run's summary.json
(its dev exact_match and f1 are fractions) and exits 1 if they differ by more than 1e-6.
"""
import argparse
import collections
import json
import re
import string
import sys


def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction, ground_truth):
    p = normalize_answer(prediction).split()
    g = normalize_answer(ground_truth).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction, ground_truth):
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def evaluate(dataset, predictions, predicted_only):
    em = f1 = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa["id"] not in predictions:
                    if predicted_only:
                        continue
                    print(f"unanswered question {qa['id']} scores 0", file=sys.stderr)
                    total += 1
                    continue
                total += 1
                golds = [a["text"] for a in qa["answers"]]
                pred = predictions[qa["id"]]
                em += max(exact_match_score(pred, g) for g in golds)
                f1 += max(f1_score(pred, g) for g in golds)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total, "questions": total}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("predictions")
    ap.add_argument("--predicted-only", action="store_true")
    ap.add_argument("--summary", help="a pretext fine-tuning run's summary.json to compare")
    a = ap.parse_args()
    with open(a.dataset, encoding="utf-8") as f:
        dataset = json.load(f)["data"]
    with open(a.predictions, encoding="utf-8") as f:
        predictions = json.load(f)
    result = evaluate(dataset, predictions, a.predicted_only)
    print(json.dumps(result))
    if a.summary:
        with open(a.summary, encoding="utf-8") as f:
            dev = json.load(f)["dev"]
        ours = {"exact_match": 100.0 * dev["exact_match"], "f1": 100.0 * dev["f1"]}
        for k, v in ours.items():
            if abs(v - result[k]) > 1e-6:
                print(f"pretext's {k} {v:.6f} differs from the official computation's {result[k]:.6f}")
                sys.exit(1)
        print(f"pretext's exact_match {ours['exact_match']:.4f} and f1 {ours['f1']:.4f} equal the official computation's")


if __name__ == "__main__":
    main()
