"""Reads safetensors files (the format is an 8-byte header length, a JSON header, raw
little-endian data) into numpy arrays, without the `safetensors` package."""

import json
import struct
from typing import Dict, Tuple

import numpy as np

from ._native import GrokscopeError

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "U64": "<u8",
    "U32": "<u4",
    "U8": "u1",
    "I8": "i1",
    "BOOL": "?",
}


def read(path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Every tensor of the file (copied out of it) and its metadata."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError(f"its header claims {n} bytes, the file has {len(data)}")
        header = json.loads(data[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = header.pop("__metadata__", {}) or {}
        out = {}
        for name, t in header.items():
            dt = np.dtype(_DTYPES[t["dtype"]])
            lo, hi = t["data_offsets"]
            shape = [int(d) for d in t["shape"]]
            if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) * dt.itemsize != hi - lo:
                raise ValueError(f"tensor {name}: shape {shape} does not fit its {hi - lo} bytes")
            if not 0 <= lo <= hi <= len(data) - 8 - n:
                raise ValueError(f"tensor {name} lies outside the file")
            arr = np.frombuffer(data, dtype=dt, count=(hi - lo) // dt.itemsize, offset=8 + n + lo)
            out[name] = arr.reshape(shape).copy()
        return out, meta
    except (struct.error, ValueError, KeyError, TypeError, RecursionError, OverflowError) as e:
        raise GrokscopeError(f"{path}: not a safetensors file grokscope can read ({e})") from None


def require(path, tensors: Dict[str, np.ndarray], dims: Dict[str, int]) -> None:
    """Raises GrokscopeError unless every tensor named in ``dims`` is there with that rank."""
    for name, rank in dims.items():
        if name not in tensors or tensors[name].ndim != rank:
            raise GrokscopeError(f"{path}: no tensor {name} of rank {rank}: not a grokscope file")
