#!/usr/bin/env python3
"""LAPE's selection (RUCAIBox/Language-Specific-Neurons, identify.py) in plain Python, as an
independent check of landermt_score::lape::select.

Reads activation counts (JSON: {"languages": [...], "activity": [{"tokens": n, "positive":
[[count per unit] per layer]} per language]}) and writes what identify.py computes from
them: p, the filter and bar quantiles (torch.kthvalue), the kept units (topk of the lowest
entropy over all layers' units together) and each language's units per layer.

    python3 bench/lape_reference.py tests/fixtures/lape/activity.json \
        --top-rate 0.05 > tests/fixtures/lape/reference.json
"""
import argparse
import json
import math


def kthvalue(values, k):
    """torch.kthvalue: the k-th smallest (1-based)."""
    return sorted(values)[k - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("activity")
    ap.add_argument("--top-rate", type=float, default=0.01)
    ap.add_argument("--filter-rate", type=float, default=0.95)
    ap.add_argument("--bar-rate", type=float, default=0.95)
    a = ap.parse_args()
    data = json.load(open(a.activity))
    langs = data["languages"]
    acts = data["activity"]
    layers, units = len(acts[0]["positive"]), len(acts[0]["positive"][0])
    # activation_probs = over_zero / n: layer x inter x lang
    p = [[[acts[k]["positive"][l][j] / acts[k]["tokens"] for k in range(len(langs))] for j in range(units)] for l in range(layers)]
    flat = [x for layer in p for unit in layer for x in unit]
    top_prob_value = kthvalue(flat, round(len(flat) * a.filter_rate))
    entropy = []
    for l in range(layers):
        for j in range(units):
            probs = p[l][j]
            s = sum(probs)
            normed = [x / s if s > 0 else 0.0 for x in probs]  # nan -> 0
            h = -sum(x * math.log(x) for x in normed if x > 0)
            if sum(1 for x in probs if x > top_prob_value) == 0:
                h = math.inf
            entropy.append((h, l, j))
    k = round(len(entropy) * a.top_rate)
    ranked = sorted(entropy)
    if k < len(ranked) and ranked[k - 1][0] == ranked[k][0] and math.isfinite(ranked[k][0]):
        raise SystemExit("a tie at the cut: torch.topk's choice is not defined there; pick another top rate")
    kept = ranked[:k]
    bar = kthvalue(flat, round(len(flat) * a.bar_rate))
    out = [{lang: [] for lang in langs} for _ in range(layers)]
    for _, l, j in kept:
        for i, lang in enumerate(langs):
            if p[l][j][i] > bar:
                out[l][lang].append(j)
    for layer in out:
        for lang in layer:
            layer[lang].sort()
    json.dump({"top_rate": a.top_rate, "filter": top_prob_value, "bar": bar, "kept": k, "p": p, "units": out}, __import__("sys").stdout)


if __name__ == "__main__":
    main()
