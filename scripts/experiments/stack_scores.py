"""Fit the weights of two models' fused scores on the calibration fold (logistic regression of
the label on their log-odds, classes weighing the same), apply them to the test fold, and write
the test fold's combined scores in `facade eval --scores` form (for scripts/eval_groups.py).

A_all.csv and B_all.csv come from `facade eval --condition original --allow-train-overlap
--scores F` (with `--model DIR` for a model other than the built-in one); each image's fold is
recomputed from its SHA-256 as facade-detect's `fold_of` does. `--exclude-source S` leaves a
source out of the fit (one a model never trained on). Stop 29's coarse-branch experiment.
Needs numpy. Usage:
  stack_scores.py A_all.csv B_all.csv OUT_test.csv [--exclude-source S] [--faces DIR]"""
import csv, hashlib, math, os, sys
import numpy as np
FACES = sys.argv[sys.argv.index("--faces") + 1] if "--faces" in sys.argv else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "faces")
def logit(s):
    s = min(max(float(s) if s else 0.0, 1e-6), 1 - 1e-6)
    return math.log(s / (1 - s))
def fold(path):
    h = hashlib.sha256(open(os.path.join(FACES, path), "rb").read()).hexdigest()
    b = int(h[:8], 16) % 20
    return "train" if b <= 9 else "cal" if b <= 12 else "test"
a = {r["path"]: r for r in csv.DictReader(open(sys.argv[1]))}
b = {r["path"]: r for r in csv.DictReader(open(sys.argv[2]))}
exclude = sys.argv[sys.argv.index("--exclude-source") + 1] if "--exclude-source" in sys.argv else None
rows = []
for p, r in a.items():
    if p in b:
        rows.append((p, r, fold(p), logit(r["score"]), logit(b[p]["score"]), r["label"] == "fake"))
cal = [x for x in rows if x[2] == "cal" and x[1]["source"] != exclude]
X = np.array([[1.0, x[3], x[4]] for x in cal]); y = np.array([1.0 if x[5] else 0.0 for x in cal])
w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())
beta = np.zeros(3)
for _ in range(100):  # Newton's method, a touch of ridge for stability
    p = 1 / (1 + np.exp(-X @ beta))
    g = X.T @ (w * (p - y)) + 1e-4 * beta
    H = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-4 * np.eye(3)
    beta -= np.linalg.solve(H, g)
print(f"calibration rows {len(cal)} ({int(y.sum())} fakes); coefficients bias {beta[0]:.3f}, A {beta[1]:.3f}, B {beta[2]:.3f}; B's share {beta[2]/(beta[1]+beta[2]):.3f}")
out = csv.DictWriter(open(sys.argv[3], "w", newline=""), fieldnames=list(next(iter(a.values())).keys()))
out.writeheader()
n = 0
for p, r, f, la, lb, _ in rows:
    if f != "test":
        continue
    r = dict(r); z = beta[0] + beta[1] * la + beta[2] * lb
    r["score"] = f"{1 / (1 + math.exp(-z)):.6f}"
    out.writerow(r); n += 1
print("test rows", n)
