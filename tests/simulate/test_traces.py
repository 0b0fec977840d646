"""Every format of ../shared/traces is read into one shape, and a short trace loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulate.errors import InputError
from simulate.traces import FLOOR_MBPS, StepTable, TracedSteps, read_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


@pytest.mark.parametrize(
    ("folder", "name", "first_mbps"),
    [
        ("hsdpa-norway", "norway_bus_1", None),
        ("fcc", "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log", 2.29085714286),
        ("oboe", "oboe_trace_0.txt", 3.1686448801742917),
        ("5gophers", "All-Carriers_01-Throughput_data.csv", 0.9312768299517644),
        ("5gophers", "All-Carriers_03-User-Mobility_car-driving-trace-1.csv", 25.764822301311288),
        ("5gophers", "All-Carriers_03-User-Mobility_walking-trace.csv", 92.1),
    ],
)
def test_every_format_reads(folder: str, name: str, first_mbps: float | None) -> None:
    path = TRACES / folder / name
    assert path.exists(), f"the shared traces are missing: {path}"
    trace = read_trace(path)
    assert trace.times[0] == 0.0
    assert len(trace.times) == len(trace.mbps) > 10
    assert all(b >= a for a, b in zip(trace.times, trace.times[1:], strict=False))
    assert min(trace.mbps) >= FLOOR_MBPS
    if first_mbps is not None:
        assert trace.at(0.0) == pytest.approx(first_mbps)
    # A run longer than the trace loops it.
    assert trace.at(trace.period_s + 0.0) == trace.at(0.0)
    assert trace.at(3 * trace.period_s + trace.times[1] + 1e-3) == trace.mbps[1]


def test_every_shared_file_reads() -> None:
    files = [p for p in TRACES.glob("*/*") if p.is_file()]
    assert len(files) == 164
    for path in files:
        assert read_trace(path).period_s > 0


def test_a_step_function_with_its_period(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("10.0\t5\n11.0\t0\n13.0\t7\n")
    trace = read_trace(f)
    assert trace.times == (0.0, 1.0, 3.0)
    assert trace.period_s == 4.5  # last time plus the median gap (1.5)
    assert [trace.at(t) for t in (0.0, 0.9, 1.0, 2.9, 3.0, 4.4, 4.5)] == [
        5.0, 5.0, FLOOR_MBPS, FLOOR_MBPS, 7.0, 7.0, 5.0,
    ]  # fmt: skip
    assert trace.next_change(0.0) == 1.0
    assert trace.next_change(3.5) == 4.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no samples"),
        ("0 1\n1\n", "line 2"),
        ("0 x\n", "not a number"),
        ("0 -1\n", "bad sample"),
        ("a,b\n1,2\n", "throughput_mbps"),
        ("1 1\n0 1\n", "backwards"),
    ],
)
def test_unreadable_traces_are_named(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(InputError, match=needle):
        read_trace(f)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read it"):
        read_trace(tmp_path / "nope.txt")


@pytest.mark.parametrize("step_s", [1.0, 0.7, 10.0])
def test_the_step_table_reads_what_the_trace_holds(tmp_path: Path, step_s: float) -> None:
    """Across block edges and laps: the figure of every step is `Trace.at`, and a step
    sees a new sample exactly when one started since the step before."""
    path = tmp_path / "t.txt"
    path.write_text("0 5\n1.5 7\n2 7\n4 1\n")  # period 5.5 s: the last time + the median gap
    trace = read_trace(path)
    assert trace.period_s == 5.5
    table = StepTable([trace, read_trace(TRACES / "hsdpa-norway" / "norway_bus_1")], step_s, 7)
    starts = [s + 5.5 * lap for s in (0.0, 1.5, 2.0, 4.0) for lap in range(80)]
    assert 0 in table.moves(0)[1]  # every trace starts a sample at the first step
    for k in range(1, 40):
        values, started_at, _ = table.moves(k)
        assert values[0] == trace.at(k * step_s)
        started = any((k - 1) * step_s < s <= k * step_s for s in starts)
        assert (0 in started_at) == started, k


@pytest.mark.parametrize("step_s", [1.0, 0.7, 10.0])
def test_the_traced_steps_tell_what_started_what_moved_and_what_signals(
    tmp_path: Path, step_s: float
) -> None:
    """Across block edges and laps, against the figures of each step told one by one: a
    sample started (`7` after `7` starts one and moves nothing), a figure moved, and a move
    past 30% of the figure last signalled signals and becomes it."""
    path = tmp_path / "t.txt"
    path.write_text("0 5\n1.5 7\n2 7\n4 1\n")
    traces = {
        ("a", "b"): read_trace(path),
        ("c", "d"): read_trace(TRACES / "hsdpa-norway" / "norway_bus_1"),
    }
    traced = TracedSteps(traces, step_s, 0.3)
    traced.table.block = 7
    trace = traces[("a", "b")]
    starts = [s + 5.5 * lap for s in (0.0, 1.5, 2.0, 4.0) for lap in range(200)]
    now = {key: tr.at(0.0) for key, tr in traces.items()}
    told = dict(now)
    signals = 0
    for k in range(60):
        t = k * step_s
        samples, moved, figures, at, signal = traced.at(k)
        if k == 0:
            assert samples == now and not moved and not signal
            continue
        started = any((k - 1) * step_s < s <= t for s in starts)
        assert (("a", "b") in samples) == started, k
        want = [key for key, tr in traces.items() if tr.at(t) != now[key]]
        assert moved == want and figures == [traces[key].at(t) for key in want], k
        assert [traced.keys[j] for j in at] == moved
        want_signal = False
        for key in want:
            now[key] = traces[key].at(t)
            if abs(now[key] - told[key]) > 0.3 * told[key]:
                told[key], want_signal = now[key], True
        assert signal == want_signal, k
        signals += signal
        assert samples.get(("a", "b"), trace.at(t)) == trace.at(t)
    assert signals > 0
