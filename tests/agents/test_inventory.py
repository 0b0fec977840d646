"""The agent's hardware inventory, read from fake /proc and /sys/block trees."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from agents.discovery import Discovery
from agents.inventory import inventory, read_cpuinfo, read_disks
from agents.main import Agent
from agents.settings import AgentSettings

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz
physical id\t: 0

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz
physical id\t: 0

processor\t: 2
model name\t: Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz
physical id\t: 1

processor\t: 3
model name\t: Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz
physical id\t: 1
"""

PI = """processor\t: 0
BogoMIPS\t: 108.00
CPU part\t: 0xd08

processor\t: 1
BogoMIPS\t: 108.00

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def _block(root: Path, name: str, sectors: int, rotational: bool) -> None:
    (root / name / "queue").mkdir(parents=True)
    (root / name / "size").write_text(f"{sectors}\n")
    (root / name / "queue" / "rotational").write_text("1\n" if rotational else "0\n")


def _tree(tmp_path: Path, cpuinfo: str, board: str | None = None) -> tuple[Path, Path]:
    proc, block = tmp_path / "proc", tmp_path / "sys" / "block"
    proc.mkdir()
    (proc / "cpuinfo").write_text(cpuinfo)
    if board is not None:
        (proc / "device-tree").mkdir()
        (proc / "device-tree" / "model").write_text(board + "\x00")
    block.mkdir(parents=True)
    return proc, block


def test_a_two_socket_server_with_an_ssd_and_an_hdd(tmp_path: Path) -> None:
    proc, block = _tree(tmp_path, XEON)
    _block(block, "nvme0n1", 1_875_385_008, rotational=False)  # 960 GB
    _block(block, "sda", 3_907_029_168, rotational=True)  # 2 TB
    for skipped in ("loop0", "zram0", "dm-0", "sr0", "ram0"):
        _block(block, skipped, 1000, rotational=False)
    _block(block, "sdb", 0, rotational=True)  # an empty card reader
    inv = inventory(proc=proc, sys_block=block)
    assert inv.kind == "server"
    assert inv.cpu_model == "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz"
    assert (inv.cpu_sockets, inv.cpu_cores) == (2, 4)
    assert [(d.kind, round(d.size_gb)) for d in inv.disks] == [("ssd", 960), ("hdd", 2000)]
    assert inv.ram_gb == pytest.approx(psutil.virtual_memory().total / 1e9)
    assert inv.board is None


def test_a_raspberry_pi_is_an_iot_board_with_its_hardware_line(tmp_path: Path) -> None:
    proc, block = _tree(tmp_path, PI, board="Raspberry Pi 4 Model B Rev 1.4")
    _block(block, "mmcblk0", 62_521_344, rotational=False)
    inv = inventory(proc=proc, sys_block=block)
    assert inv.kind == "iot"
    assert inv.board == "Raspberry Pi 4 Model B Rev 1.4"
    assert inv.cpu_model == "BCM2835"
    assert (inv.cpu_sockets, inv.cpu_cores) == (1, 2)
    assert [d.kind for d in inv.disks] == ["ssd"]


def test_a_named_cloud_instance_or_kind_wins(tmp_path: Path) -> None:
    proc, block = _tree(tmp_path, XEON)
    cloud = inventory("auto", None, "aws", "p3.2xlarge", proc=proc, sys_block=block)
    assert (cloud.kind, cloud.cloud_provider, cloud.cloud_instance) == (
        "cloud",
        "aws",
        "p3.2xlarge",
    )
    laptop = inventory("terminal", "laptop-pro", proc=proc, sys_block=block)
    assert (laptop.kind, laptop.archetype) == ("terminal", "laptop-pro")


def test_missing_trees_give_what_can_be_read(tmp_path: Path) -> None:
    assert read_disks(tmp_path / "nowhere") == []
    (tmp_path / "cpuinfo").write_text("")
    assert read_cpuinfo(tmp_path / "cpuinfo") == (None, 1, 1)


def _enroll_request(tmp_path: Path, **settings: object) -> dict[str, object]:
    agent = Agent(
        AgentSettings(
            state_dir=tmp_path / "state", battery="none", enroll_token="cnt_enroll_x", **settings
        )
    )
    agent.discovery = _discovery()
    return agent.enroll_request().model_dump(exclude_unset=True)


def _discovery() -> Discovery:
    return Discovery(
        cores=2, memory_mb=1000, free_memory_mb=500, gflops=5, bench_ms=1, bench_runs=5
    )


def test_an_agent_asks_for_its_profile_only_when_no_one_set_its_power(tmp_path: Path) -> None:
    plain = _enroll_request(tmp_path, zone="FRA")
    assert plain["power_provenance"] == "profile"
    assert plain["zone"] == "FRA" and "inventory" in plain
    assert "embodied_kgco2e" not in plain and "grid_gco2_per_kwh" not in plain
    declared = _enroll_request(tmp_path, power_idle_w=3, power_busy_w=9, embodied_kgco2e=40)
    assert "power_provenance" not in declared and declared["embodied_kgco2e"] == 40
    # An emulated device is not the host: neither its hardware nor its profile.
    emulated = _enroll_request(tmp_path, emulate_gflops=10)
    assert "inventory" not in emulated and "power_provenance" not in emulated
