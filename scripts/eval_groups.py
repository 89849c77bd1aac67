#!/usr/bin/env python3
"""Group the per-image scores of `facade eval --scores FILE` the way the detector issue asks.

Usage: python3 scripts/eval_groups.py SCORES.csv [--markdown]

For each condition (original, small) it prints, for facade and the GANEyeDistance peer:
- pooled AUC and TPR at the thresholds that flag 1% and 0.1% of all reals;
- per fake group (StyleGAN2 as served, StyleGAN2 at 128 px, StyleGAN v1, Stable Diffusion,
  every fake source alone): AUC against all reals and TPR at the pooled thresholds;
- per real source, and FFHQ with all its forms together: the share flagged at the pooled 1%
  threshold;
- StyleGAN2 against FFHQ alone (all forms pooled): AUC.

An image without a face scores 0 for facade and +inf eye distance for the peer (never
flagged), as `facade eval` counts it. Standard library only.
"""

import csv
import math
import sys
from collections import defaultdict

# Fake groups of the shared set, by manifest source.
FAKE_GROUPS = [
    ("StyleGAN2 as served (tpdne 512-1024 px, boredhumans)", {"tpdne-junguler", "boredhumans"}),
    ("StyleGAN2 at 128 px (tpdne-128)", {"tpdne-128"}),
    ("StyleGAN v1 at 256 px", {"stylegan1-140k"}),
    ("Stable Diffusion 2.1", {"sdfd"}),
]
FFHQ = {"ffhq", "ffhq-128", "ffhq-256"}
STYLEGAN2 = {"tpdne-junguler", "boredhumans", "tpdne-128"}


def auc(pos, neg):
    """ROC AUC with ties counted half (Mann-Whitney U)."""
    if not pos or not neg:
        return None
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2.0
        rank_sum += mean_rank * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    u = rank_sum - len(pos) * (len(pos) + 1) / 2.0
    return u / (len(pos) * len(neg))


def threshold_at(reals, fpr):
    """The lowest score that flags at most `fpr` of the reals (flagged: strictly above)."""
    ordered = sorted(reals, reverse=True)
    allowed = int(math.floor(fpr * len(ordered)))
    return ordered[allowed] if allowed < len(ordered) else -math.inf


def rate_above(scores, t):
    return sum(1 for s in scores if s > t) / len(scores) if scores else None


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def fmt_auc(v):
    return "-" if v is None else f"{v:.3f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1], newline="")))
    by_condition = defaultdict(list)
    for r in rows:
        by_condition[r["condition"]].append(r)
    for condition, items in by_condition.items():
        print(f"\n## condition: {condition} ({len(items)} images)")
        for who in ("facade", "peer"):
            scores = []
            for r in items:
                if who == "facade":
                    s = float(r["score"]) if r["score"] else 0.0
                else:
                    s = -float(r["peer_eye_distance"]) if r["peer_eye_distance"] else -math.inf
                scores.append((r["source"], r["label"] == "fake", s))
            reals = [s for _, f, s in scores if not f]
            fakes = [s for _, f, s in scores if f]
            t1, t01 = threshold_at(reals, 0.01), threshold_at(reals, 0.001)
            print(f"\n### {who}: pooled AUC {fmt_auc(auc(fakes, reals))}, "
                  f"TPR@FPR1% {pct(rate_above(fakes, t1))}, @0.1% {pct(rate_above(fakes, t01))} "
                  f"({len(fakes)} fakes, {len(reals)} reals)")
            print("| group | n | AUC vs all reals | TPR @FPR 1% | TPR @FPR 0.1% |")
            print("|---|---|---|---|---|")
            groups = list(FAKE_GROUPS)
            for source in sorted({src for src, f, _ in scores if f}):
                groups.append((f"fake: {source}", {source}))
            for name, members in groups:
                g = [s for src, f, s in scores if f and src in members]
                if g:
                    print(f"| {name} | {len(g)} | {fmt_auc(auc(g, reals))} | "
                          f"{pct(rate_above(g, t1))} | {pct(rate_above(g, t01))} |")
            print("| real source | n | flagged @FPR 1% | |  |")
            real_groups = [(f"real: {src}", {src}) for src in
                           sorted({src for src, f, _ in scores if not f})]
            real_groups.append(("real: FFHQ, all forms", FFHQ))
            for name, members in real_groups:
                g = [s for src, f, s in scores if not f and src in members]
                if g:
                    flagged = sum(1 for s in g if s > t1)
                    print(f"| {name} | {len(g)} | {pct(flagged / len(g))} ({flagged}) | | |")
            sg2 = [s for src, f, s in scores if f and src in STYLEGAN2]
            ffhq = [s for src, f, s in scores if not f and src in FFHQ]
            print(f"\nStyleGAN2 ({len(sg2)}) against FFHQ alone ({len(ffhq)}): "
                  f"AUC {fmt_auc(auc(sg2, ffhq))}")


if __name__ == "__main__":
    main()
