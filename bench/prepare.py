"""Platform-form copies of N shared faces: longest side 400 px, JPEG quality 90.
Sampled round-robin across sources (deterministic), so no single source dominates. With
MIN_LONG_SIDE, only images whose original's longer side is at least that many pixels (so that
nothing is a small crop scaled up). Prints how many came from each source.
Usage: prepare.py SHARED_FACES_DIR OUT_DIR N [MIN_LONG_SIDE]"""
import csv
import os
import sys
from collections import defaultdict

from PIL import Image

faces, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
min_long_side = int(sys.argv[4]) if len(sys.argv) > 4 else 0
by_source = defaultdict(list)
with open(os.path.join(faces, "manifest.csv")) as f:
    for row in csv.DictReader(f):
        if max(int(row["width"]), int(row["height"])) >= min_long_side:
            by_source[row["source"]].append(row["path"])
picked, i = [], 0
while len(picked) < n and any(i < len(v) for v in by_source.values()):
    for source in sorted(by_source):
        if i < len(by_source[source]) and len(picked) < n:
            picked.append(by_source[source][i])
    i += 1
os.makedirs(out, exist_ok=True)
for k, path in enumerate(picked):
    im = Image.open(os.path.join(faces, path)).convert("RGB")
    scale = 400 / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
    im.save(os.path.join(out, f"{k:05d}.jpg"), quality=90)
counts = defaultdict(int)
for path in picked:
    counts[next(s for s, paths in by_source.items() if path in paths)] += 1
print(f"prepared {len(picked)} images in {out}: " + ", ".join(f"{s} {c}" for s, c in sorted(counts.items())))
