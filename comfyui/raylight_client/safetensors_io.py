"""Safetensors bodies in pure Python (the server's tensor transport).

The node pack's transport must run without ComfyUI, torch or numpy (CI tests it against
the real server with the standard library only), so tensors here are plain values:
dtype name, shape and raw little-endian bytes. Inside ComfyUI, ``from_torch`` and
``to_torch`` convert. Decoding checks the header the way the server does: offsets in
bounds, sizes matching shapes, no gaps or overlaps, known dtypes.
"""

import array
import json
import struct
import sys

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
               "I64": 8, "I32": 4, "U8": 1}
MAX_HEADER = 100 << 20


class SafetensorsError(ValueError):
    pass


class RawTensor:
    """A tensor as bytes: dtype (safetensors name), shape, data (C order, little endian)."""

    __slots__ = ("dtype", "shape", "data")

    def __init__(self, dtype, shape, data):
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError("unknown dtype %r" % (dtype,))
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise SafetensorsError("negative dimension in shape %r" % (shape,))
        if len(data) != numel(shape) * DTYPE_SIZES[dtype]:
            raise SafetensorsError("%d bytes do not fit %s %r" % (len(data), dtype, shape))
        self.dtype, self.shape, self.data = dtype, shape, bytes(data)

    @classmethod
    def from_floats(cls, shape, values):
        """An F32 tensor from a flat sequence of numbers."""
        a = array.array("f", values)
        if sys.byteorder != "little":
            a.byteswap()
        return cls("F32", shape, a.tobytes())

    def to_floats(self):
        """The values as a flat list of Python floats (F32 and F16 only)."""
        if self.dtype == "F32":
            a = array.array("f")
            a.frombytes(self.data)
            if sys.byteorder != "little":
                a.byteswap()
            return a.tolist()
        if self.dtype == "F16":
            return [v[0] for v in struct.iter_unpack("<e", self.data)]
        raise SafetensorsError("to_floats supports F32 and F16, not %s" % self.dtype)

    def __repr__(self):
        return "RawTensor(%s, %r)" % (self.dtype, self.shape)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def encode(tensors, metadata=None):
    """Bytes of a safetensors body: ``tensors`` maps names to RawTensor (in that order)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("'__metadata__' is not a tensor name")
        header[name] = {"dtype": t.dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return b"".join([struct.pack("<Q", len(text)), text] + [t.data for t in tensors.values()])


def decode(body):
    """(tensors, metadata) from a safetensors body; SafetensorsError when it is malformed."""
    if len(body) < 8:
        raise SafetensorsError("body of %d bytes is shorter than the header length" % len(body))
    n = struct.unpack("<Q", body[:8])[0]
    if n == 0 or n > MAX_HEADER or n > len(body) - 8:
        raise SafetensorsError("bad header length %d for a body of %d bytes" % (n, len(body)))
    try:
        header = json.loads(body[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise SafetensorsError("header is not valid JSON: %s" % e)
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    data = memoryview(body)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError("__metadata__ must map names to strings")
    entries = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError("tensor %r: malformed entry" % name)
        dtype, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError("tensor %r: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError("tensor %r: bad shape %r" % (name, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= len(data)):
            raise SafetensorsError("tensor %r: data_offsets %r outside the data" % (name, offs))
        if offs[1] - offs[0] != numel(shape) * DTYPE_SIZES[dtype]:
            raise SafetensorsError("tensor %r: %d bytes for %s %r" % (name, offs[1] - offs[0], dtype, shape))
        entries.append((offs[0], offs[1], name, dtype, shape))
    entries.sort()
    covered = 0
    for begin, end, name, _, _ in entries:
        if begin != end and begin != covered:
            raise SafetensorsError("tensor %r: gap or overlap at byte %d" % (name, begin))
        covered = max(covered, end)
    if covered != len(data):
        raise SafetensorsError("%d bytes after the last tensor" % (len(data) - covered))
    tensors = {name: RawTensor(dtype, shape, data[b:e]) for b, e, name, dtype, shape in
               sorted(entries, key=lambda x: x[0])}
    return tensors, metadata


def from_torch(t):
    """RawTensor (F32) from a torch tensor of any float dtype."""
    import torch  # only inside ComfyUI
    t = t.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return RawTensor("F32", tuple(t.shape), t.numpy().tobytes())


def to_torch(raw):
    """torch float32 tensor from a RawTensor (F32, F16 or BF16)."""
    import torch
    dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}.get(raw.dtype)
    if dt is None:
        raise SafetensorsError("cannot convert %s to torch" % raw.dtype)
    if numel(raw.shape) == 0:
        return torch.zeros(raw.shape, dtype=torch.float32)
    t = torch.frombuffer(bytearray(raw.data), dtype=dt).reshape(raw.shape)
    return t.to(torch.float32)
