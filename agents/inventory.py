"""The machine's hardware, for its embodied carbon (issue 14, docs/carbon.md).

CPU model, sockets and cores from /proc/cpuinfo; RAM from psutil; disks from
/sys/block (whole devices, not partitions, loops, RAM disks or device-mapper volumes;
`queue/rotational` tells an HDD from an SSD); GPUs from NVML when the `pynvml` module is
installed and a driver answers; the board from /proc/device-tree/model (ARM boards). The
roots are parameters so tests read fake trees.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import psutil

from api.wire import Disk, Gpu, HardwareInventory

_SKIPPED_BLOCKS = re.compile(r"^(loop|ram|zram|dm-|sr|md|nbd|fd)")
_SECTOR = 512  # /sys/block/*/size counts 512-byte sectors whatever the disk's own


def read_cpuinfo(path: Path) -> tuple[str | None, int, int]:
    """(model name, sockets, logical CPUs). ARM kernels may give no model name: then the
    `Hardware` or `Model` line, else None."""
    model: str | None = None
    fallback: str | None = None
    sockets: set[str] = set()
    processors = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "model name" and model is None and value:
            model = value
        elif key in {"Hardware", "Model"} and value:
            fallback = fallback or value
        elif key == "physical id":
            sockets.add(value)
    return model or fallback, max(1, len(sockets)), max(1, processors)


def read_disks(sys_block: Path) -> list[Disk]:
    disks: list[Disk] = []
    if not sys_block.is_dir():
        return disks
    for entry in sorted(sys_block.iterdir()):
        if _SKIPPED_BLOCKS.match(entry.name):
            continue
        try:
            sectors = int((entry / "size").read_text().strip())
            rotational = (entry / "queue" / "rotational").read_text().strip() == "1"
        except (OSError, ValueError):
            continue
        if sectors <= 0:
            continue
        disks.append(Disk(kind="hdd" if rotational else "ssd", size_gb=sectors * _SECTOR / 1e9))
    return disks


def read_gpus() -> list[Gpu]:
    """NVIDIA GPUs through NVML, when pynvml is installed and a driver answers."""
    try:
        nvml: Any = importlib.import_module("pynvml")
    except ImportError:
        return []
    try:
        nvml.nvmlInit()
    except Exception:  # no driver: NVML raises its own error types
        return []
    try:
        gpus = []
        for k in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(k)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total
            text = name.decode() if isinstance(name, bytes) else str(name)
            gpus.append(Gpu(name=text[:128], memory_mb=memory / 1e6))
        return gpus
    finally:
        nvml.nvmlShutdown()


def read_board(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def inventory(
    kind: str = "auto",
    archetype: str | None = None,
    cloud_provider: str | None = None,
    cloud_instance: str | None = None,
    proc: Path = Path("/proc"),
    sys_block: Path = Path("/sys/block"),
) -> HardwareInventory:
    """What this machine is. `kind` auto: a cloud instance if one is named, an IoT board
    for a Raspberry Pi (Boavizta has no server model small enough), else a server."""
    model, sockets, cores = read_cpuinfo(proc / "cpuinfo")
    board = read_board(proc / "device-tree" / "model")
    if kind == "auto":
        if cloud_instance:
            kind = "cloud"
        elif board and "raspberry pi" in board.lower():
            kind = "iot"
        else:
            kind = "server"
    return HardwareInventory.model_validate(
        {
            "kind": kind,
            "archetype": archetype,
            "cloud_provider": cloud_provider,
            "cloud_instance": cloud_instance,
            "cpu_model": model[:256] if model else None,
            "cpu_sockets": min(sockets, 64),
            "cpu_cores": min(cores, 4096),
            "ram_gb": psutil.virtual_memory().total / 1e9,
            "disks": read_disks(sys_block)[:64],
            "gpus": read_gpus()[:16],
            "board": board[:256] if board else None,
        }
    )
