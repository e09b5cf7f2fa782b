"""Reads safetensors files (the format is an 8-byte header length, a JSON header, raw
little-endian data) into numpy arrays, without the `safetensors` package."""

import hashlib
import json
import re
import struct
import sys
from typing import Dict, Set, Tuple

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


_PLACEHOLDER = b"0" * 64
# The digest sits in grokscope's metadata object, a JSON string inside the header: the key
# reads `sha256\":\"` there (src/digest.rs, docs/OUTPUTS.md "What is verified").
_KEY = b'sha256\\":\\"'
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{64}")
_NOTED: Set[str] = set()


def verify(path, data: bytes) -> None:
    """Raises GrokscopeError unless the file's bytes match the SHA-256 digest grokscope
    sealed into it: the digest of the whole file with its own 64 digits zeroed. A file
    written before digests existed has none: noted once on stderr, read unchecked."""
    if len(data) < 8:
        return  # too short for a header: read() says what is wrong
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n] if n <= len(data) - 8 else b""
    at = header.find(_KEY)
    if at < 0 or 8 + at + len(_KEY) + 64 > 8 + len(header):
        if _HEX_RUN.search(header):
            raise GrokscopeError(
                f"{path}: its metadata holds a digest under a damaged key: the file was changed after grokscope wrote it"
            )
        if str(path) not in _NOTED:
            _NOTED.add(str(path))
            print(
                f"note: {path} has no content digest (written before grokscope recorded them): it is read unchecked",
                file=sys.stderr,
            )
        return
    lo = 8 + at + len(_KEY)
    found = data[lo : lo + 64]
    want = hashlib.sha256(data[:lo] + _PLACEHOLDER + data[lo + 64 :]).hexdigest().encode()
    if found != want:
        raise GrokscopeError(
            f"{path}: its content does not match the SHA-256 digest it was written with (the file has "
            f"{want[:16].decode()}, its metadata says {found[:16].decode(errors='replace')}): it was changed "
            "or damaged after grokscope wrote it"
        )


def tag(path, meta: Dict[str, str], key: str):
    """The entry ``key`` of grokscope's metadata object (None when absent)."""
    text = meta.get("grokscope")
    if text is None:
        return meta.get(key)
    try:
        info = json.loads(text)
    except ValueError:
        raise GrokscopeError(f"{path}: its metadata is not grokscope's") from None
    return info.get(key) if isinstance(info, dict) else None


def read(path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Every tensor of the file (copied out of it) and its metadata, after checking the
    file's content digest."""
    with open(path, "rb") as f:
        data = f.read()
    verify(path, data)
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
