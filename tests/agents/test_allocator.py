"""The allocator setting, each case in a fresh interpreter (it is set once per process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import resource

from agents.allocator import keep_freed_memory
first, again = keep_freed_memory(), keep_freed_memory()
# Four buffers of a hop's size at a time, made and dropped: with glibc's defaults the
# freed heap top is trimmed and every round faults its pages in afresh (about 98,000
# faults here); with the thresholds raised the pages are reused.
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    buffers = [bytearray(1_000_000) for _ in range(4)]
    del buffers
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(first, again, faults)
"""


def _run(env: dict[str, str]) -> tuple[str, str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, cwd=ROOT, capture_output=True,
        text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    return out[0], out[1], int(out[2])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_are_raised_once_and_freed_buffers_are_reused() -> None:
    first, again, faults = _run({})
    assert (first, again) == ("True", "True")
    # 400 MB made in all, 98,000 pages: reused, they fault in about once.
    assert faults < 10_000


def test_an_operators_own_setting_stands() -> None:
    first, again, _ = _run({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert (first, again) == ("False", "False")
