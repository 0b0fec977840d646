"""The compact binary form in which tensors travel between agents.

A frame is:

    b"CTF1"                      4 bytes, magic and version
    header length                4 bytes, unsigned little-endian
    header                       UTF-8 JSON: {"tensors": [{"name", "dtype", "shape"}...],
                                 "meta": {...}}  (meta: the trace so far, the source...)
    payload                      each tensor's raw C-order little-endian bytes, in the
                                 header's order, back to back

The header is a few hundred bytes; the payload is the tensors' bytes as they sit in
memory, so encoding is at most one copy (none with `encode_parts`, whose pieces go to a
socket as they are) and decoding none (`np.frombuffer`). Decoding checks
everything before any array is made: a known dtype, non-negative dimensions, and a
payload whose length is exactly the sum of the tensors' sizes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"CTF1"
MEDIA_TYPE = "application/x-continuum-tensor-frame"
_LEN = struct.Struct("<I")
_PREFIX = len(MAGIC) + _LEN.size
MAX_HEADER_BYTES = 1 << 20
MAX_TENSORS = 64
MAX_RANK = 16

# The dtypes ONNX models exchange; anything else (object arrays above all) is refused.
DTYPES = frozenset(
    {
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool",
    }
)  # fmt: skip


class FrameError(ValueError):
    """A malformed frame; the message says what is wrong."""


@dataclass
class Frame:
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">":
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def encode_parts(
    tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
) -> list[bytes | memoryview]:
    """A frame as its pieces: the magic, length and header in one `bytes`, then a view of
    each tensor's memory. Written to a socket one after another, a frame is sent without
    a copy of its tensors; `encode` joins them."""
    if len(tensors) > MAX_TENSORS:
        raise FrameError(f"at most {MAX_TENSORS} tensors per frame (got {len(tensors)})")
    entries = []
    payloads: list[memoryview] = []
    for name, raw in tensors.items():
        # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
        array = _little_endian(np.require(raw, requirements="C"))
        dtype = array.dtype.name
        if dtype not in DTYPES:
            raise FrameError(f"tensor {name!r}: dtype {dtype} cannot travel in a frame")
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        # A flat byte view of the array's own memory (bool and float16 included).
        payloads.append(array.reshape(-1).view(np.uint8).data)
    header = json.dumps(
        {"tensors": entries, "meta": dict(meta or {})}, separators=(",", ":")
    ).encode()
    return [MAGIC + _LEN.pack(len(header)) + header, *payloads]


def encode(tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> bytes:
    """A frame in one `bytes`: the tensors' memory copied once."""
    return b"".join(encode_parts(tensors, meta))


def _shape(entry: dict[str, Any], name: str) -> tuple[int, ...]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise FrameError(f"tensor {name!r}: shape must be a list of at most {MAX_RANK} dims")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise FrameError(f"tensor {name!r}: dimensions must be non-negative integers")
    return tuple(shape)


def decode(data: bytes | bytearray | memoryview) -> Frame:
    view = memoryview(data)
    if len(view) < _PREFIX or bytes(view[: len(MAGIC)]) != MAGIC:
        raise FrameError("not a tensor frame (bad magic, or truncated)")
    (header_len,) = _LEN.unpack(view[len(MAGIC) : _PREFIX])
    if header_len > MAX_HEADER_BYTES or _PREFIX + header_len > len(view):
        raise FrameError("tensor frame header is truncated or too large")
    try:
        header = json.loads(bytes(view[_PREFIX : _PREFIX + header_len]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FrameError("tensor frame header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise FrameError("tensor frame header has no tensor list")
    entries = header["tensors"]
    meta = header.get("meta") or {}
    if len(entries) > MAX_TENSORS or not isinstance(meta, dict):
        raise FrameError("tensor frame header is malformed")
    # Validate every entry and the total size before making any array.
    plan: list[tuple[str, np.dtype[Any], tuple[int, ...], int]] = []
    offset = _PREFIX + header_len
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FrameError("every tensor in a frame needs a name")
        name = entry["name"]
        if entry.get("dtype") not in DTYPES:
            raise FrameError(f"tensor {name!r}: unsupported dtype {entry.get('dtype')!r}")
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
        shape = _shape(entry, name)
        # Python integers: a shape like [2**32, 2**32] must not wrap around to 0 bytes.
        nbytes = math.prod(shape) * dtype.itemsize
        plan.append((name, dtype, shape, nbytes))
        offset += nbytes
        if offset > len(view):
            raise FrameError(
                f"tensor {name!r}: shape {list(shape)} needs {nbytes} bytes, more than the "
                f"frame's payload of {len(view) - _PREFIX - header_len}"
            )
    if offset != len(view):
        raise FrameError(
            f"tensor frame payload is {len(view) - _PREFIX - header_len} bytes; the header "
            f"describes {offset - _PREFIX - header_len}"
        )
    tensors: dict[str, np.ndarray] = {}
    offset = _PREFIX + header_len
    for name, dtype, shape, nbytes in plan:
        if name in tensors:
            raise FrameError(f"tensor {name!r} appears twice in the frame")
        array = np.frombuffer(view[offset : offset + nbytes], dtype=dtype).reshape(shape)
        tensors[name] = array
        offset += nbytes
    return Frame(tensors=tensors, meta=meta)
