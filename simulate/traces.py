"""Throughput traces: read every format of `../shared/traces/` into one shape.

Formats (`../shared/traces/README.md`):
- HSDPA (Norway), FCC and Oboe: two whitespace-separated columns, seconds and Mbit/s;
- 5Gophers: CSV with a header. The throughput column is `throughput_mbps`; the mobility
  drives have one column per carrier (`Sprint_throughput_mbps`, ...) and the first of
  them is used; rows are one second apart (`seq_num`), and the 120 runs of
  `All-Carriers_01` are played one after the other, in file order.

A trace is a step function: the sample at time t holds until the next one. A run longer
than the trace loops it, so the trace's period is its last time plus one typical gap.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulate.errors import InputError

# A zero sample would mean "no link" to the solver (a route needs mbps > 0): a trace that
# drops to nothing is floored here, at a rate no model's transfer could use.
FLOOR_MBPS = 0.01


@dataclass(frozen=True, slots=True)
class Trace:
    """Throughput over time: `times[k]` (seconds, from 0, increasing) holds `mbps[k]`."""

    name: str
    times: tuple[float, ...]
    mbps: tuple[float, ...]
    period_s: float

    def at(self, t: float) -> float:
        """The throughput in force at time t (looped)."""
        local = t % self.period_s
        k = bisect.bisect_right(self.times, local) - 1
        return self.mbps[max(k, 0)]

    def next_change(self, t: float) -> float:
        """The first time after t at which the next sample starts (looped)."""
        local = t % self.period_s
        k = bisect.bisect_right(self.times, local)
        return t - local + (self.times[k] if k < len(self.times) else self.period_s)

    def mean(self) -> float:
        return statistics.fmean(self.mbps)


class StepTable:
    """Several traces read at every step `k * step_s`, a block of steps at a time (numpy):
    the figure in force (`Trace.at`) and which sample it is, counted across laps, so that
    a step knows which traces started a sample since the last one, and which changed
    figure (`moves`)."""

    def __init__(self, traces: list[Trace], step_s: float, block: int = 4096) -> None:
        self.traces, self.step_s, self.block = traces, step_s, block
        self._times = [np.asarray(tr.times) for tr in traces]
        self._mbps = [np.asarray(tr.mbps) for tr in traces]
        self._first = -1
        self._rows: list[list[float]] = []
        self._started: tuple[list[int], list[int]] = ([0], [])
        self._changed: tuple[list[int], list[int]] = ([0], [])

    def moves(self, k: int) -> tuple[list[float], list[int], list[int]]:
        """(figures, traces that started a sample, traces whose figure changed) at step k,
        against step k - 1 (at step 0 every trace starts one, and none changed), as lists:
        a step reads a few of them, and numpy's cost per call is the most of that."""
        at = self._at(k)
        started, changed = self._started, self._changed
        return (
            self._rows[at],
            started[1][started[0][at] : started[0][at + 1]],
            changed[1][changed[0][at] : changed[0][at + 1]],
        )

    def _at(self, k: int) -> int:
        at = k - self._first
        if self._first < 0 or not 0 <= at < len(self._rows):
            self._fill(k)
            at = 0
        return at

    def _fill(self, k0: int) -> None:
        # One step before the block as well, which each step is told against.
        first = max(k0 - 1, 0)
        t = np.arange(first, k0 + self.block, dtype=np.float64) * self.step_s
        values = np.empty((len(t), len(self.traces)))
        samples = np.empty((len(t), len(self.traces)), dtype=np.int64)
        for j, tr in enumerate(self.traces):
            lap, local = np.divmod(t, tr.period_s)
            idx = np.maximum(np.searchsorted(self._times[j], local, side="right") - 1, 0)
            values[:, j] = self._mbps[j][idx]
            samples[:, j] = lap.astype(np.int64) * len(tr.times) + idx
        if k0 == 0:
            values = np.vstack([values[:1], values])
            samples = np.vstack([np.full((1, len(self.traces)), -1, dtype=np.int64), samples])
        self._first, self._rows = k0, values[1:].tolist()
        self._started = _by_row(samples[1:] != samples[:-1])
        self._changed = _by_row(values[1:] != values[:-1])


def _by_row(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """The columns set in each row of `mask`: row r's are `cols[starts[r]:starts[r + 1]]`."""
    rows, cols = np.nonzero(mask)
    starts = np.searchsorted(rows, np.arange(len(mask) + 1))
    return starts.tolist(), cols.tolist()


class TracedSteps:
    """The traced links step by step (a `StepTable` of them, by their sorted keys): the
    samples each step starts (what the agents report), the links whose figure moved, and
    whether one moved past `step` (a fraction) of the figure last told the policies."""

    def __init__(self, traces: Mapping[tuple[str, str], Trace], step_s: float, step: float) -> None:
        self.keys = sorted(traces)
        self.table = StepTable([traces[key] for key in self.keys], step_s)
        self.step = step
        self.signalled = [traces[key].at(0.0) for key in self.keys]

    def at(
        self, k: int
    ) -> tuple[dict[tuple[str, str], float], list[tuple[str, str]], list[float], list[int], bool]:
        """(samples started, links moved, their figures, their indices in `keys`, signal)."""
        keys = self.keys
        row, started, moved_at = self.table.moves(k)
        samples = {keys[j]: row[j] for j in started}
        moved = [keys[j] for j in moved_at]
        figures = [row[j] for j in moved_at]
        signal, held, step = False, self.signalled, self.step
        for j, value in zip(moved_at, figures, strict=True):
            told = held[j]
            if abs(value - told) > step * told:
                held[j] = value
                signal = True
        return samples, moved, figures, moved_at, signal


def _finish(name: str, times: list[float], mbps: list[float]) -> Trace:
    if len(times) < 1:
        raise InputError(f"trace {name}: no samples")
    t0 = times[0]
    shifted = [t - t0 for t in times]
    for k in range(1, len(shifted)):
        if shifted[k] < shifted[k - 1]:
            raise InputError(f"trace {name}: time goes backwards at sample {k + 1}")
    gaps = [b - a for a, b in itertools.pairwise(shifted) if b > a]
    gap = statistics.median(gaps) if gaps else 1.0
    return Trace(name, tuple(shifted), tuple(max(m, FLOOR_MBPS) for m in mbps), shifted[-1] + gap)


def _columns(name: str, text: str) -> Trace:
    times: list[float] = []
    mbps: list[float] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise InputError(f"trace {name}: line {n}: expected two columns, seconds and Mbit/s")
        try:
            t, m = float(parts[0]), float(parts[1])
        except ValueError:
            raise InputError(
                f"trace {name}: line {n}: not a number: {line.strip()[:40]!r}"
            ) from None
        if not (math.isfinite(t) and math.isfinite(m) and m >= 0):
            raise InputError(f"trace {name}: line {n}: bad sample {line.strip()[:40]!r}")
        times.append(t)
        mbps.append(m)
    return _finish(name, times, mbps)


def _csv(name: str, text: str) -> Trace:
    rows = csv.DictReader(io.StringIO(text))
    header = rows.fieldnames or []
    column = "throughput_mbps" if "throughput_mbps" in header else None
    if column is None:
        column = next((h for h in header if h.endswith("_throughput_mbps")), None)
    if column is None:
        raise InputError(f"trace {name}: a CSV trace needs a throughput_mbps column")
    mbps: list[float] = []
    for n, row in enumerate(rows, 2):
        value = (row.get(column) or "").strip()
        if not value:
            continue  # 5Gophers leaves a cell empty where the phone had no reading
        try:
            m = float(value)
        except ValueError:
            raise InputError(
                f"trace {name}: line {n}: {column} is not a number: {value!r}"
            ) from None
        if not (math.isfinite(m) and m >= 0):
            raise InputError(f"trace {name}: line {n}: bad {column} {value!r}")
        mbps.append(m)
    # One row a second (5Gophers logs per second); seq_num restarts with every run.
    return _finish(name, [float(k) for k in range(len(mbps))], mbps)


def read_trace(path: Path) -> Trace:
    """A trace file in any of the formats above; InputError naming the file otherwise."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise InputError(f"trace {path}: cannot read it ({reason})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first and any(c.isalpha() for c in first):
        return _csv(name, text)
    return _columns(name, text)


__all__ = ["FLOOR_MBPS", "StepTable", "Trace", "read_trace"]
