"""Neurosurgeon (Kang et al., ASPLOS 2017) reproduced on its own models.

AlexNet and VGG-19 from the `onnx` wheel go through the registry (one block per layer,
as the paper partitions), onto a phone and a cloud server joined by one link whose
bandwidth sweeps 0.1 to 1,000 Mbit/s. At every bandwidth the split that `neurosurgeon`
and `ilp` choose (latency objective) must be the best single split found here by
enumerating every cut with the contract's latency formula, written out again below (and
the phone's energy the plan reports is what the contract charges it); the phone's share
of the model may only shrink as bandwidth grows, from all on the phone to all in the
cloud; and the model is never cut between conv1 and pool1, whose output is larger than
the input.

Each model is priced two ways: by the registry's FLOPs (the contract's compute model),
and by a roofline, where a layer costs at least its weights' bytes times the devices'
machine balance (fully connected layers are memory-bound: fc6 reads 151 MB of weights
to do 0.08 GFLOP). The paper's split of AlexNet after pool5 on Wi-Fi appears only with
the second; `bench/neurosurgeon.py` prints both sweeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import pytest

from models_registry import analyse_model
from solver import Problem, SolveOptions, Status, parse_scenario, solve
from tests.harness.caffe import caffe_names

pytestmark = pytest.mark.slow  # 42 solves for each model and pricing

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
BANDWIDTHS = [10 ** (k / 5) for k in range(-5, 16)]  # 0.1 .. 1,000 Mbit/s, 5 per decade

# A phone with a mobile GPU and a GPU server, each at a sustained DNN throughput, and
# a Wi-Fi-like link. One inference every 100 s keeps every shared capacity far from its
# limit even at 0.1 Mbit/s, so that latency alone decides the split, as in the paper.
PHONE = {"gflops": 50.0, "idle": 2.0, "busy": 7.0}
CLOUD = {"gflops": 4000.0, "idle": 100.0, "busy": 350.0}
RTT_MS = 10.0
J_PER_MB = 0.5
RATE_RPS = 0.01
# FLOP per byte of memory traffic at which both devices turn from memory- to compute-bound:
# Jetson TK1's GPU 327 GFLOP/s over 14.9 GB/s, a Titan X 6.1 TFLOP/s over 336 GB/s.
MACHINE_BALANCE = 20.0

ALEXNET_LAYERS = [
    "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
    "conv4", "relu4", "conv5", "relu5", "pool5", "flatten", "fc6", "relu6", "drop6", "fc7",
    "relu7", "drop7", "fc8", "prob",
]  # fmt: skip


@dataclass(frozen=True)
class Net:
    name: str
    reading: str  # "flops" or "roofline"
    input_mb: float
    layers: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return [layer["name"] for layer in self.layers]


def load_net(name: str, staged: bool, reading: str) -> Net:
    analysis = analyse_model(LIGHT / f"light_{name}.onnx", granularity="fine")
    entry = analysis.to_scenario_model(name)
    layers = entry["layers"]
    for layer, caffe in zip(layers, caffe_names(analysis, staged), strict=True):
        layer["name"] = caffe
        if reading == "roofline":
            weight_gflop = layer["params_mb"] * 1e6 * MACHINE_BALANCE / 1e9
            layer["gflops"] = max(layer["gflops"], weight_gflop)
    return Net(name, reading, entry["input_mb"], layers)


NETS = [(m, staged, r) for m, staged in (("bvlc_alexnet", False), ("vgg19", True))
        for r in ("flops", "roofline")]  # fmt: skip


@pytest.fixture(scope="module", params=NETS, ids=lambda p: f"{p[0]}-{p[2]}")
def net(request: pytest.FixtureRequest) -> Net:
    name, staged, reading = request.param
    return load_net(name, staged, reading)


def scenario(net: Net, mbps: float) -> dict[str, Any]:
    return {
        "version": 1,
        "objective": {"energy": 0, "latency": 1},
        "devices": [
            {"id": "phone", "tier": "device", "gflops": PHONE["gflops"], "memory_mb": 4096,
             "power_w": {"idle": PHONE["idle"], "busy": PHONE["busy"]}},
            {"id": "cloud", "tier": "cloud", "gflops": CLOUD["gflops"], "memory_mb": 65536,
             "power_w": {"idle": CLOUD["idle"], "busy": CLOUD["busy"]}},
        ],
        "links": [{"a": "phone", "b": "cloud", "mbps": mbps, "rtt_ms": RTT_MS,
                   "j_per_mb": J_PER_MB}],
        "models": [{"id": net.name, "input_mb": net.input_mb, "layers": net.layers}],
        "apps": [{"id": "ipa", "model": net.name, "source": "phone", "rate_rps": RATE_RPS,
                  "max_stages": 2}],
    }  # fmt: skip


# -- the analytic best single split, from the contract's formula ---------------------------
def transfer_ms(mb: float, mbps: float) -> float:
    return RTT_MS / 2 + 8 * mb / mbps * 1000


def split_latency_ms(net: Net, mbps: float, k: int, first: str = "phone") -> float:
    """Worst-case latency of blocks[:k] on `first` and blocks[k:] on the other device;
    the input is produced, and the result wanted, on the phone."""
    speed = {"phone": PHONE["gflops"], "cloud": CLOUD["gflops"]}
    second = "cloud" if first == "phone" else "phone"
    hosts = [first] * k + [second] * (len(net.layers) - k)
    ms = 0.0 if hosts[0] == "phone" else transfer_ms(net.input_mb, mbps)
    for i, (layer, host) in enumerate(zip(net.layers, hosts, strict=True)):
        ms += layer["gflops"] / speed[host] * 1000
        if i + 1 < len(hosts) and hosts[i + 1] != host:
            ms += transfer_ms(layer["out_mb"], mbps)
    if hosts[-1] != "phone":
        ms += transfer_ms(net.layers[-1]["out_mb"], mbps)
    return ms


def phone_joules(net: Net, mbps: float, k: int) -> float:
    """What the phone pays per inference for blocks[:k] on it, the rest in the cloud:
    its compute above idle, and the MB it sends (the input, or block k-1's output)."""
    n = len(net.layers)
    seconds = sum(layer["gflops"] for layer in net.layers[:k]) / PHONE["gflops"]
    sent = 0.0 if k == n else (net.input_mb if k == 0 else net.layers[k - 1]["out_mb"])
    return (PHONE["busy"] - PHONE["idle"]) * seconds + J_PER_MB * sent


def every_single_split(net: Net, mbps: float) -> dict[tuple[str, int], float]:
    """(device holding the first k blocks, k) -> worst-case latency, both ways round."""
    return {
        (first, k): split_latency_ms(net, mbps, k, first)
        for first in ("phone", "cloud")
        for k in range(len(net.layers) + 1)
    }


def least_tied(net: Net, mbps: float, k: int) -> int:
    """The fewest phone blocks whose split is exactly as fast as k's: a block of no
    compute (dropout, flatten) leaves a tie on either side of it, and a solver may take
    either."""
    split = every_single_split(net, mbps)
    same = pytest.approx(split[("phone", k)], rel=1e-12)
    return min(j for j in range(k + 1) if split[("phone", j)] == same)


Sweep = list[tuple[float, int, float, float]]


@pytest.fixture(scope="module")
def sweep() -> Callable[[Net, str], Sweep]:
    """`sweep(net, solver)`: (bandwidth, blocks on the phone, worst-case ms, the phone's
    joules per inference) at every bandwidth, solved once per net and solver."""
    done: dict[tuple[str, str, str], Sweep] = {}

    def run(net: Net, solver: str) -> Sweep:
        key = (net.name, net.reading, solver)
        if key not in done:
            points = []
            for mbps in BANDWIDTHS:
                problem = Problem(parse_scenario(scenario(net, mbps)))
                plan = solve(problem, SolveOptions(), solver)
                assert plan.status != Status.INFEASIBLE, (mbps, plan.doc.reason)
                blocks = plan.placements["ipa"].blocks
                assert blocks is not None
                k = sum(1 for b in blocks if b == "phone")
                # Phone first, then the cloud: a single split the way Neurosurgeon cuts.
                assert blocks == ("phone",) * k + ("cloud",) * (len(blocks) - k), blocks
                phone = next(d for d in plan.doc.devices if d.id == "phone")
                worst = plan.doc.apps[0].latency_ms.worst
                points.append((mbps, k, worst, phone.power_w / RATE_RPS))
            done[key] = points
        return done[key]

    return run


# -- the tests ------------------------------------------------------------------------------
def test_the_blocks_are_the_papers_layers(net: Net) -> None:
    if net.name == "bvlc_alexnet":
        assert net.names == ALEXNET_LAYERS
    else:
        assert net.names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
        assert net.names[-10:-4] == ["pool5", "flatten", "fc6", "relu6", "drop6", "fc7"]
        # 16 conv + 16 relu, 5 pools, flatten, 3 fc + 2 relu + 2 dropout, prob
        assert len(net.layers) == 16 + 16 + 5 + 1 + 3 + 2 + 2 + 1
    # Why conv1..pool1 is never a cut: every activation before pool1 outweighs the input.
    pool1 = net.names.index("pool1")
    assert all(layer["out_mb"] > net.input_mb for layer in net.layers[:pool1])


@pytest.mark.parametrize("solver", ["neurosurgeon", "ilp"])
def test_the_split_is_the_best_single_split_at_every_bandwidth(
    net: Net, solver: str, sweep: Callable[[Net, str], Sweep]
) -> None:
    for mbps, k, latency, joules in sweep(net, solver):
        split = every_single_split(net, mbps)
        best = min(split.values())
        assert latency == pytest.approx(best, rel=1e-6), (mbps, k)
        assert split[("phone", k)] == pytest.approx(best, rel=1e-9), (mbps, k)
        assert joules == pytest.approx(phone_joules(net, mbps, k), rel=1e-6), (mbps, k)


@pytest.mark.parametrize("solver", ["neurosurgeon", "ilp"])
def test_the_split_moves_from_the_phone_to_the_cloud_as_bandwidth_grows(
    net: Net, solver: str, sweep: Callable[[Net, str], Sweep]
) -> None:
    points = sweep(net, solver)
    shares = [least_tied(net, mbps, k) for mbps, k, _, _ in points]
    assert shares == sorted(shares, reverse=True), list(zip(BANDWIDTHS, shares, strict=True))
    assert shares[0] == len(net.layers) and shares[-1] == 0, shares
    pool1 = net.names.index("pool1")
    inside = [(mbps, net.names[k - 1]) for mbps, k, _, _ in points if 0 < k <= pool1]
    assert not inside, f"cut between conv1 and pool1: {inside}"


def test_alexnet_on_wifi_splits_after_pool5_only_when_fc_layers_are_memory_bound(
    sweep: Callable[[Net, str], Sweep],
) -> None:
    """The paper's result, AlexNet on a mobile GPU over Wi-Fi (tens of Mbit/s) cut after
    pool5, needs fc6-fc8 to cost what their weights cost to read; by FLOPs they are 9% of
    the model and the phone keeps it whole."""
    wifi = [mbps for mbps in BANDWIDTHS if 10 <= mbps <= 50]
    for reading, expected in (("roofline", "pool5"), ("flops", "prob")):
        net = load_net("bvlc_alexnet", False, reading)
        for mbps, k, _, _ in sweep(net, "ilp"):
            if mbps in wifi:
                assert net.names[k - 1] == expected, (reading, mbps, k)
