"""Platform-form copies of N shared faces: longest side 400 px, JPEG quality 90.
Sampled round-robin across sources (deterministic), so no single source dominates.
Usage: prepare.py SHARED_FACES_DIR OUT_DIR N"""
import csv
import os
import sys
from collections import defaultdict

from PIL import Image

faces, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
by_source = defaultdict(list)
with open(os.path.join(faces, "manifest.csv")) as f:
    for row in csv.DictReader(f):
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
print(f"prepared {len(picked)} images in {out}")
