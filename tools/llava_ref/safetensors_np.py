"""Minimal safetensors reader/writer in numpy (reference tooling, no dependencies
beyond numpy).

File layout (https://github.com/huggingface/safetensors):
  8 bytes   little-endian uint64 N = length of the JSON header in bytes
  N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
            optional "__metadata__": {str: str}}; padded with spaces (0x20) so that
            8 + N is a multiple of 8
  rest      data region; data_offsets are byte offsets relative to its start

Supported dtypes: F32, F16, BF16 (plus F64, I32, I64, U8 for convenience).
BF16 is written as the upper 16 bits of the float32 pattern after
round-to-nearest-even, and read back as float32 (exactly representable).
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

_NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest, ties to even.
    NaN stays NaN (quiet), infinities stay infinities."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = x.view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    rounded = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)) & np.uint64(0xFFFF)
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> np.uint64(16)) | np.uint64(0x0040)).astype(np.uint16)
    return out


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 (exact)."""
    b = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    return b.view(np.float32)


def round_to_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """What a value becomes after storing it as `dtype` and reading it back (float32)."""
    if dtype == "BF16":
        return bf16_bits_to_f32(f32_to_bf16_bits(x))
    if dtype == "F16":
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)
    if dtype == "F32":
        return np.asarray(x, dtype=np.float32)
    raise ValueError(f"unsupported dtype {dtype}")


def _encode(arr: np.ndarray, dtype: str) -> bytes:
    if dtype == "BF16":
        return f32_to_bf16_bits(arr).astype("<u2").tobytes(order="C")
    if dtype not in _NP_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}")
    return np.ascontiguousarray(np.asarray(arr).astype(_NP_DTYPES[dtype])).tobytes(order="C")


def save_file(tensors: dict, path: str, metadata: dict | None = None) -> None:
    """tensors: {name: (np.ndarray, dtype_str)} or {name: np.ndarray} (dtype from the array).
    Tensors are laid out in the given (insertion) order; the header lists keys sorted,
    so the output is deterministic. Written atomically (temp file + rename)."""
    header: dict = {}
    blobs = []
    offset = 0
    for name, val in tensors.items():
        if isinstance(val, tuple):
            arr, dtype = val
        else:
            arr = np.asarray(val)
            dtype = {np.dtype("float32"): "F32", np.dtype("float16"): "F16",
                     np.dtype("float64"): "F64", np.dtype("int32"): "I32",
                     np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}[arr.dtype]
        arr = np.asarray(arr)
        data = _encode(arr, dtype)
        assert len(data) == arr.size * _ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hdr = {}
    if metadata:
        hdr["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for k in sorted(header):
        hdr[k] = header[k]
    hjson = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    pad = (8 - (8 + len(hjson)) % 8) % 8
    hjson += b" " * pad
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_header(path: str) -> tuple[dict, int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hjson = f.read(n)
    return json.loads(hjson.decode("utf-8")), 8 + n


def load_file(path: str, keep_dtype: bool = False) -> dict:
    """Returns {name: np.ndarray}. Floats come back as float32 (BF16/F16 widened exactly),
    unless keep_dtype=True (then F16 stays float16 and BF16 is returned as its uint16 bits).
    Also returns dtypes via load_file_with_dtypes."""
    return {k: v for k, (v, _) in load_file_with_dtypes(path, keep_dtype).items()}


def load_file_with_dtypes(path: str, keep_dtype: bool = False) -> dict:
    header, start = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != n * _ITEMSIZE[dtype] or e > len(data):
            raise ValueError(f"{path}: bad data_offsets for {name}")
        raw = data[b:e]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").reshape(shape)
            arr = bits.copy() if keep_dtype else bf16_bits_to_f32(bits).reshape(shape)
        else:
            arr = np.frombuffer(raw, dtype=_NP_DTYPES[dtype]).reshape(shape).copy()
            if dtype == "F16" and not keep_dtype:
                arr = arr.astype(np.float32)
        out[name] = (arr, dtype)
    return out


def _selftest() -> None:
    import tempfile
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    # RNE check on hand-picked patterns
    pats = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F80C000, 0x7F7FFFFF], dtype=np.uint32)
    got = f32_to_bf16_bits(pats.view(np.float32))
    assert list(got) == [0x3F80, 0x3F82, 0x3F80, 0x3F81, 0x7F80], [hex(g) for g in got]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        save_file({"a": (x, "F32"), "b": (x, "F16"), "c": (x, "BF16")}, p, {"k": "v"})
        hdr, start = read_header(p)
        assert start % 8 == 0
        t = load_file(p)
        assert np.array_equal(t["a"], x)
        assert np.array_equal(t["b"], x.astype(np.float16).astype(np.float32))
        assert np.array_equal(t["c"], round_to_dtype(x, "BF16"))
        assert np.max(np.abs(t["c"] - x) / np.abs(x)) <= 2.0 ** -8
    print("safetensors_np selftest ok")


if __name__ == "__main__":
    _selftest()
