"""`bench/simulate.py`'s workloads for the benchmarks that study one policy on them.

That module's name is the package's (`simulate`), so it cannot be imported by name from a
script in bench/: it is loaded by path, once.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


@cache
def bench_simulate() -> ModuleType:
    """bench/simulate.py, loaded by path (`example(...)`, `fleet(...)`)."""
    spec = importlib.util.spec_from_file_location("bench_simulate", HERE / "simulate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
