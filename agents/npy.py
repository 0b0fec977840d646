"""NumPy `.npy` bodies, the data plane's input and answer format."""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.lib import format as npy_format

from agents import tensorframe
from agents.problems import HopError


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def load_npy(body: bytes, max_bytes: int) -> np.ndarray:
    """The array in a .npy body, checked against its header before any allocation: a
    header may claim a shape of terabytes (np.load would try to allocate them)."""
    stream = io.BytesIO(body)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise HopError(422, f"the body is not a NumPy .npy array ({exc})") from None
    if dtype.name not in tensorframe.DTYPES:
        raise HopError(422, f"unsupported dtype {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if nbytes > max_bytes:
        raise HopError(
            413, f"a tensor of shape {list(shape)} is {nbytes} bytes; the cap (max_tensor_mb) "
            f"is {max_bytes}"
        )  # fmt: skip
    offset = stream.tell()
    if len(body) - offset != nbytes:
        raise HopError(
            422, f"the .npy header describes {nbytes} bytes of data; the body holds "
            f"{len(body) - offset}"
        )  # fmt: skip
    flat = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=offset)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
