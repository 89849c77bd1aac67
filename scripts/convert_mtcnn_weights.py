#!/usr/bin/env python3
"""Convert facenet-pytorch's MTCNN weights into one safetensors file facade embeds.

The PyPI wheel facenet-pytorch==2.6.0 (MIT licence) ships the published MTCNN weights as
facenet_pytorch/data/{pnet,rnet,onet}.pt in PyTorch's legacy (pre-1.6, non-zip) serialisation
with non-contiguous strides. This script reads that format with the standard library only (no
torch), makes every tensor contiguous, and writes
crates/facade-face/weights/mtcnn.safetensors with names like `pnet.conv1.weight`.

Usage:  python3 scripts/convert_mtcnn_weights.py [--wheel PATH] [--out PATH]
Without --wheel it runs `pip download --no-deps facenet-pytorch==2.6.0` into a temp dir.
The output is deterministic: running it twice gives identical bytes.
"""
import argparse
import collections
import glob
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
NETS = ("pnet", "rnet", "onet")


class _Storage:
    def __init__(self, key, numel):
        self.key = key
        self.numel = numel
        self.data = None  # list of floats, filled after the storages are read


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def contiguous_values(self):
        """The tensor's values in row-major order, honouring its strides."""
        out = []

        def walk(dim, base):
            if dim == len(self.size):
                out.append(self.storage.data[base])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, base + i * self.stride[dim])

        walk(0, self.offset)
        return out


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(tensor, requires_grad=False, hooks=None, *rest):
    return tensor


class _FloatStorageType:
    pass


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name == "FloatStorage":
            return _FloatStorageType
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in weight file")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view = saved_id
        if kind != "storage" or storage_type is not _FloatStorageType or view is not None:
            raise pickle.UnpicklingError(f"unsupported storage {saved_id!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, numel)
        return self.storages[key]


def load_legacy_state_dict(path):
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch file")
        if pickle.load(f) != 1001:
            raise ValueError(f"{path}: unknown protocol version")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian file")
        state = _LegacyUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            storage = storages[key]
            if numel != storage.numel:
                raise ValueError(f"{path}: storage {key} size mismatch")
            storage.data = list(struct.unpack(f"<{numel}f", f.read(4 * numel)))
    return state


def write_safetensors(tensors, out_path, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def fetch_wheel(tmp, requirement="facenet-pytorch==2.6.0", pattern="facenet_pytorch-2.6.0-*.whl"):
    """`pip download` one wheel (no dependencies) into `tmp`; its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", tmp],
        check=True,
    )
    wheels = glob.glob(os.path.join(tmp, pattern))
    if not wheels:
        raise SystemExit(f"pip did not produce the wheel of {requirement}")
    return wheels[0]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="path to facenet_pytorch-2.6.0-*.whl (downloaded if absent)")
    parser.add_argument("--out", default=os.path.join(root, "crates/facade-face/weights/mtcnn.safetensors"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(tmp)
        tensors = {}
        with zipfile.ZipFile(wheel) as zf:
            for net in NETS:
                member = f"facenet_pytorch/data/{net}.pt"
                local = zf.extract(member, tmp)
                for name, ref in load_legacy_state_dict(local).items():
                    tensors[f"{net}.{name}"] = (ref.size, ref.contiguous_values())
    metadata = {
        "source": "PyPI facenet-pytorch==2.6.0, facenet_pytorch/data/{pnet,rnet,onet}.pt",
        "licence": "MIT (facenet-pytorch, Tim Esler); MTCNN weights of Zhang et al. 2016",
        "converter": "scripts/convert_mtcnn_weights.py",
    }
    write_safetensors(tensors, args.out, metadata)
    total = sum(len(v) for _, v in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {total} floats")


if __name__ == "__main__":
    main()
