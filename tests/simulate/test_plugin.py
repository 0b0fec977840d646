"""A policy from outside the package: examples/policy-plugin, pip-installed into this
environment, is found through the entry-point group and run by `continuum simulate`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "policy-plugin"
CONTINUUM = Path(sys.executable).with_name("continuum")


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        timeout=300,
        capture_output=True,
    )


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[None]:
    # Build from a copy: the build must not leave build/ or *.egg-info in the checkout.
    source = tmp_path / "plugin"
    shutil.copytree(PLUGIN, source)
    _pip("install", "--no-deps", str(source))
    try:
        yield
    finally:
        _pip("uninstall", "-y", "continuum-lazy-policy")


def test_an_installed_plugin_policy_runs(installed: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            str(CONTINUUM), "simulate", str(ROOT / "examples" / "factory-line.yaml"),
            "--policy", "lazy,static", "--hours", "0.02", "--out", str(out),
            "--fail", "edge-a@0.01",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads((out / "summary.json").read_text())["policies"]
    assert set(figures) == {"lazy", "static"}
    # edge-a fails at 36 s: static keeps the plan that used it, lazy re-plans around it.
    assert figures["lazy"]["replacements"] >= 1
    assert figures["lazy"]["violation_s"] < figures["static"]["violation_s"]


def test_without_the_plugin_the_name_is_unknown(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(CONTINUUM), "simulate", str(ROOT / "examples" / "factory-line.yaml"),
            "--policy", "lazy", "--hours", "0.01", "--out", str(tmp_path / "o"),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown policy 'lazy'" in result.stderr
