"""The Python peer: facenet-pytorch MTCNN.detect (default settings) on every file of a directory.
Usage: peer_mtcnn.py DIR THREADS. Prints images/s of the detection loop (decode included)."""
import os
import sys
import time

import torch
from facenet_pytorch import MTCNN
from PIL import Image

directory, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
files = sorted(os.path.join(directory, f) for f in os.listdir(directory))
mtcnn = MTCNN(device="cpu")
with torch.no_grad():
    start = time.time()
    found = 0
    for path in files:
        boxes, probs, points = mtcnn.detect(Image.open(path).convert("RGB"), landmarks=True)
        found += boxes is not None
    secs = time.time() - start
print(f"peer facenet-pytorch: {len(files)} images in {secs:.2f} s = {len(files) / secs:.1f} images/s ({found} with faces)")
