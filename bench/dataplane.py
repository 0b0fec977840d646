"""Benchmark of the data plane: ResNet-50 (the onnx wheel's light model, random weights)
split in two and three parts across local agent data planes (one process each, one
onnxruntime thread each) against one in-process onnxruntime session.

Each data plane is the agent's own (`agents.dataplane`), given its partition through the
same make-before-break switch a desired state goes through, so no control plane is
involved: this measures the data plane alone. Reported:

- end-to-end latency (median over --runs requests through `POST /v1/infer` on the
  source's agent) against the in-process session, and the difference;
- added latency per hop: the hop's `transfer_ms` from the trace (the sender's time from
  framing the tensor to decoding the answer, minus the receiver's own work, i.e. its
  partition and the hops after it: serialisation, the loopback network and HTTP, both
  ways, reading the body included), against the target of 2 ms plus the time to move the
  tensor's bytes at the probed bandwidth;
- throughput, sequential and with 4 concurrent clients;
- predicted end-to-end latency by the contract's cost model (partition GFLOP / the
  discovery benchmark's GFLOP/s, plus rtt/2 + 8*MB/mbps per transfer with the probed
  loopback figures) against the measured one.

The loopback bandwidth is probed with 2 MB transfers (`GET /v1/probe`, minus an empty
one's time), median of 10: smaller probes on loopback are a fraction of a millisecond,
within the noise of the round trip they are corrected by.

    .venv/bin/python bench/dataplane.py [--runs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from machine import cpu_model  # noqa: E402

from tests.harness.ports import free_port  # noqa: E402
from tests.harness.processes import Launcher, NotReady, wait_until  # noqa: E402

TOKEN = "cnt_bench_dataplane"
PROBE_BYTES = 2 * 1024 * 1024
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


# -- one node (a child process) --------------------------------------------------------------
def serve(state_dir: Path, device_id: str, port: int) -> None:
    import uvicorn

    from agents.battery import NoBattery
    from agents.client import ControlPlaneClient
    from agents.dataplane import DataPlane, create_app
    from agents.ingress import timed_protocol
    from agents.state import ServingState
    from agents.watcher import Watcher

    async def main() -> None:
        state = ServingState(battery=NoBattery(), device_id=device_id)
        client = ControlPlaneClient("http://127.0.0.1:9")  # never called: artifacts cached
        watcher = Watcher(state, client, state_dir, 1, 10.0)
        saved = watcher.load_saved()
        assert saved is not None
        await watcher.apply(saved)
        dp = DataPlane(state)
        config = uvicorn.Config(
            create_app(dp), host="127.0.0.1", port=port, log_level="warning",
            access_log=False, lifespan="off", http=timed_protocol(),
        )  # fmt: skip
        await uvicorn.Server(config).serve()
        await dp.aclose()
        await client.aclose()

    asyncio.run(main())


# -- the harness ------------------------------------------------------------------------------
def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _cuts(analysis: Any, parts: int) -> list[str]:
    """Cut points that split the model's GFLOP most evenly into `parts`."""
    total = analysis.total_gflops
    names, acc = [b.name for b in analysis.blocks], 0.0
    cuts: list[str] = []
    for k, block in enumerate(analysis.blocks[:-1]):
        acc += block.gflops
        if acc >= total * (len(cuts) + 1) / parts and len(cuts) < parts - 1:
            cuts.append(names[k])
    return cuts


def run_split(
    work: Path, model: onnx.ModelProto, analysis: Any, parts: int, runs: int, feeds: np.ndarray
) -> dict[str, Any]:
    import hashlib

    from agents.discovery import measure_gflops
    from api.wire import ArtifactRef, DesiredState, Endpoint, NextHop, PartitionSpec, SourceSpec
    from models_registry import split_model

    pieces = split_model(analysis, _cuts(analysis, parts))
    names = [f"n{k}" for k in range(parts)]
    ports = [free_port() for _ in names]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    sink = Endpoint(device_id=names[0], data_plane_url=urls[0])
    specs = []
    for k, piece in enumerate(pieces):
        data = piece.to_bytes()
        sha = hashlib.sha256(data).hexdigest()
        node_dir = work / f"split{parts}" / names[k]
        (node_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        (node_dir / "artifacts" / sha).write_bytes(data)
        nxt = (
            NextHop(device_id=names[k + 1], data_plane_url=urls[k + 1], key=f"b/m/{k + 1}")
            if k + 1 < parts
            else None
        )
        spec = PartitionSpec(
            key=f"b/m/{k}", deployment="b", model="m", first=piece.first, last=piece.last,
            first_index=piece.first_index, last_index=piece.last_index,
            artifact=ArtifactRef(sha256=sha, url="", size=len(data)), exits=[],
            next_hop=nxt, sink=sink, data_plane_token=TOKEN,
        )  # fmt: skip
        specs.append(spec)
        sources = (
            [SourceSpec(deployment="b", rate_rps=1.0, data_plane_token=TOKEN,
                        first_hop=NextHop(device_id=names[0], data_plane_url=urls[0],
                                          key="b/m/0"))]
            if k == 0
            else []
        )  # fmt: skip
        desired = DesiredState(device_id=names[k], version=1, partitions=[spec], sources=sources)
        (node_dir / "desired.json").write_text(desired.model_dump_json())
    launcher = Launcher()
    try:
        procs = [
            launcher.start(
                n,
                ["--serve", str(work / f"split{parts}" / n), n, str(p)],
                {"OMP_NUM_THREADS": "1"},
                work / f"split{parts}-{n}.log",
                program=[sys.executable, __file__],
            )
            for n, p in zip(names, ports, strict=True)
        ]
        with httpx.Client(timeout=120) as client:

            def serving() -> bool:
                return all(client.get(f"{u}/healthz").status_code == 200 for u in urls)

            try:
                wait_until("every data plane", serving, 300, procs, 0.2)
            except NotReady as exc:
                raise SystemExit(str(exc)) from None
            auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-npy"}
            body = _npy(feeds)
            for _ in range(3):  # warm connections and caches
                client.post(f"{urls[0]}/v1/infer/b", content=body, headers=auth).raise_for_status()
            e2e, traces = [], []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.post(f"{urls[0]}/v1/infer/b", content=body, headers=auth)
                e2e.append((time.perf_counter() - started) * 1000.0)
                response.raise_for_status()
                traces.append(json.loads(response.headers["X-Continuum-Trace"]))
            # Probe loopback figures between nodes, as the agent's prober does.
            probe_headers = {"Authorization": f"Bearer {TOKEN}"}
            rtts, bws = [], []
            for _ in range(10):
                t0 = time.perf_counter()
                client.get(f"{urls[-1]}/v1/probe", params={"bytes": 0}, headers=probe_headers)
                rtt = time.perf_counter() - t0
                t0 = time.perf_counter()
                probe = client.get(
                    f"{urls[-1]}/v1/probe", params={"bytes": PROBE_BYTES}, headers=probe_headers
                )
                assert len(probe.content) == PROBE_BYTES
                rtts.append(rtt)
                bws.append(8 * PROBE_BYTES / 1e6 / max(time.perf_counter() - t0 - rtt, 50e-6))
        throughput_seq = runs / (sum(e2e) / 1000.0)

        async def concurrent(n_clients: int, per_client: int) -> float:
            async with httpx.AsyncClient(timeout=120) as aclient:

                async def worker() -> None:
                    for _ in range(per_client):
                        r = await aclient.post(f"{urls[0]}/v1/infer/b", content=body, headers=auth)
                        r.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(n_clients)))
                return n_clients * per_client / (time.perf_counter() - started)

        throughput_conc = asyncio.run(concurrent(4, max(runs // 4, 3)))
    finally:
        launcher.stop_all()
    gflops_rate, _, _ = measure_gflops(1, 1.0)
    rtt_ms = statistics.median(rtts) * 1000.0
    mbps = statistics.median(bws)
    hop_mb = [sum(o.nbytes for o in piece.outputs) / 1e6 for piece in pieces[:-1]]
    input_mb = feeds.nbytes / 1e6
    part_gflops = [sum(b.gflops for b in analysis.blocks[p.first_index : p.last_index + 1])
                   for p in pieces]  # fmt: skip
    predicted = sum(g / gflops_rate for g in part_gflops) * 1000.0 + sum(
        rtt_ms / 2 + 8 * mb / mbps * 1000.0 for mb in [input_mb, *hop_mb]
    )
    per_hop = []
    for k in range(1, parts):
        transfers = sorted(t[k]["transfer_ms"] for t in traces)
        move_ms = 8 * hop_mb[k - 1] / mbps * 1000.0
        per_hop.append(
            {
                "hop": f"{names[k - 1]}->{names[k]}",
                "tensor_mb": round(hop_mb[k - 1], 3),
                "transfer_ms_median": round(statistics.median(transfers), 3),
                "transfer_ms_p90": round(transfers[int(0.9 * (len(transfers) - 1))], 3),
                "bytes_time_ms": round(move_ms, 3),
                "overhead_ms": round(statistics.median(transfers) - move_ms, 3),
                "target_ms": round(2.0 + move_ms, 3),
                "met": statistics.median(transfers) <= 2.0 + move_ms,
            }
        )
    compute = [
        round(statistics.median(t[k]["compute_ms"] for t in traces), 2) for k in range(parts)
    ]
    return {
        "parts": parts,
        "cuts": [p.last for p in pieces[:-1]],
        "e2e_ms_median": round(statistics.median(e2e), 2),
        "e2e_ms_p90": round(sorted(e2e)[int(0.9 * (len(e2e) - 1))], 2),
        "compute_ms_median": compute,
        "per_hop": per_hop,
        "throughput_rps_sequential": round(throughput_seq, 2),
        "throughput_rps_4_clients": round(throughput_conc, 2),
        "predicted_ms": round(predicted, 2),
        "probe_rtt_ms": round(rtt_ms, 3),
        "probe_mbps": round(mbps, 1),
        "bench_gflops": round(gflops_rate, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from models_registry import analyse_model, randomize
    from models_registry.runtime import make_session

    model = randomize(LIGHT / "light_resnet50.onnx", seed=0)
    analysis = analyse_model(model)
    feeds = np.random.default_rng(0).standard_normal(analysis.inputs[0].shape).astype(np.float32)
    session = make_session(model, 1)
    name = session.get_inputs()[0].name
    for _ in range(3):
        session.run(None, {name: feeds})
    local = []
    for _ in range(args.runs):
        started = time.perf_counter()
        session.run(None, {name: feeds})
        local.append((time.perf_counter() - started) * 1000.0)
    results: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
        },
        "model": "light_resnet50 (random weights, seed 0)",
        "total_gflops": round(analysis.total_gflops, 3),
        "in_process_ms_median": round(statistics.median(local), 2),
        "in_process_rps": round(1000.0 / statistics.mean(local), 2),
        "splits": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for parts in (2, 3):
            results["splits"].append(run_split(Path(tmp), model, analysis, parts, args.runs, feeds))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        main()
