"""Keep freed memory in the process, so tensors in flight do not page-fault.

Every hop moves megabytes through fresh buffers: the HTTP server's body chunks, the
body itself, the tensors onnxruntime returns. With glibc's defaults each such buffer is
a new mapping or lands on a heap top that is trimmed back to the system once freed, so
the next request faults the same pages in again: on the development VM about 500 page
faults per 0.8 MB hop on the receiving agent, over a millisecond of the hop's 2 ms
budget. Raising the mmap and trim thresholds to the ceiling glibc's own dynamic rule
would reach makes freed buffers come back from the heap, already mapped.

The cost: the process's resident memory stays near its peak instead of shrinking
between requests (it never holds more than it once used). Operators who set
`MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` themselves keep their choice.
Anything but glibc is left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's DEFAULT_MMAP_THRESHOLD_MAX: the highest mmap threshold it accepts.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024 if ctypes.sizeof(ctypes.c_void_p) == 8 else 512 * 1024

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; whether they are now in force."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # The mmap threshold first: setting either one turns glibc's dynamic rule off.
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_MAX)
    )
    return _done
