"""NVIDIA GPUs' power through NVML (agents/power.py `NvmlReader`). This machine has no GPU,
so the readings come from a stand-in `pynvml` module exposing the functions NVML
documents, with its units (milliwatts; utilization in percent) and its error class;
the real `pynvml` (the `nvml` extra) is used where the machine allows: NVML failing to
start without a driver."""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Any

import pytest

from agents.power import NvmlReader, PowerMeter


@dataclass
class Utilization:  # nvmlUtilization_t: percent of time busy over the last sample period
    gpu: int
    memory: int


class FakeNvml(types.ModuleType):
    """A `pynvml` for GPUs whose milliwatts and utilization the test sets."""

    class NVMLError(Exception):
        pass

    class NVMLError_LibraryNotFound(NVMLError):  # pynvml's name
        pass

    def __init__(self, milliwatts: list[float], busy_pct: list[int]) -> None:
        super().__init__("pynvml")
        self.milliwatts, self.busy_pct = milliwatts, busy_pct
        self.fail_init: Exception | None = None
        self.fail_next_read = False
        self.inits = 0

    def nvmlInit(self) -> None:  # NVML's names
        self.inits += 1
        if self.fail_init is not None:
            raise self.fail_init

    def nvmlDeviceGetCount(self) -> int:
        return len(self.milliwatts)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return ("handle", index)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> float:
        if self.fail_next_read:
            self.fail_next_read = False
            raise self.NVMLError("GPU is lost")
        return self.milliwatts[handle[1]]

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization:
        return Utilization(gpu=self.busy_pct[handle[1]], memory=0)


def test_board_power_is_summed_over_gpus_in_watts_with_their_utilization() -> None:
    nvml = FakeNvml([52_500, 30_000], [40, 60])
    reader = NvmlReader(nvml)
    assert reader.utilization() is None  # no reading yet
    assert reader.read(1.0) == pytest.approx(82.5)
    assert reader.utilization() == pytest.approx(0.5)
    assert (reader.name, reader.unavailable, nvml.inits) == ("nvml", None, 1)
    reader.read(2.0)
    assert nvml.inits == 1  # started once


def test_the_fit_follows_the_gpus_own_utilization() -> None:
    # One GPU drawing 30 W idle and 180 W flat out, whatever the agent's CPU compute.
    nvml = FakeNvml([0.0], [0])
    meter = PowerMeter([NvmlReader(nvml)], 5.0, 10.0, max_w=2_000.0)
    for k in range(30):
        busy = (k * 7) % 101
        nvml.busy_pct[0], nvml.milliwatts[0] = busy, 30_000 + 1_500 * busy
        meter.sample(float(k + 1), utilization=0.05)  # the agent's own: not the GPU's
    provenance, idle, busy_w = meter.figures()
    assert provenance == "fitted"
    assert (idle, busy_w) == (pytest.approx(30.0), pytest.approx(180.0))
    report = meter.report()
    assert report is not None and report.source == "nvml" and report.provenance == "fitted"


def test_bad_gpu_readings_go_the_same_way_as_any_reader() -> None:
    nvml = FakeNvml([3_000_000.0], [50])  # 3 kW on a device-tier agent: a broken sensor
    meter = PowerMeter([NvmlReader(nvml)], 5.0, 10.0, max_w=200.0)
    meter.sample(1.0, 0.0)
    nvml.milliwatts[0] = math.nan
    meter.sample(2.0, 0.0)
    nvml.milliwatts[0] = -5_000.0
    meter.sample(3.0, 0.0)
    assert meter.rejected == {"absurd": 1, "nan": 1, "negative": 1}
    assert meter.figures()[0] == "declared" and not meter.samples


def test_an_nvml_error_skips_one_reading() -> None:
    nvml = FakeNvml([40_000.0], [10])
    reader = NvmlReader(nvml)
    nvml.fail_next_read = True
    assert reader.read(1.0) is None and reader.utilization() is None
    assert reader.errors == 1 and reader.unavailable is None
    assert reader.read(2.0) == pytest.approx(40.0)


def test_nvml_that_cannot_start_says_nothing_for_good() -> None:
    nvml = FakeNvml([40_000.0], [10])
    nvml.fail_init = nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found")
    reader = NvmlReader(nvml)
    assert reader.read(1.0) is None and reader.read(2.0) is None
    assert reader.unavailable == "NVML: NVML Shared Library Not Found"
    assert nvml.inits == 1  # not retried on every heartbeat
    meter = PowerMeter([reader], 5.0, 10.0, max_w=200.0)
    meter.sample(3.0, 0.5)
    assert meter.report() is None  # nothing to say: the declared figures stand


def test_the_real_pynvml_without_a_driver() -> None:
    pynvml = pytest.importorskip("pynvml", reason="the nvml extra is not installed")
    reader = NvmlReader()
    try:
        watts = reader.read(1.0)
    finally:
        if reader.unavailable is None:
            pynvml.nvmlShutdown()
    if reader.unavailable is None:  # a machine with an NVIDIA driver: a real reading
        assert watts is not None and watts >= 0
    else:
        assert watts is None and reader.unavailable.startswith("NVML: ")
