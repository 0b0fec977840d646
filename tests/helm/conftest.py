"""The real helm binary for the chart's tests: fetched by scripts/fetch-helm.sh into
.cache/tools (make tools). Missing is a failure with what to run, never a skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".cache" / "tools" / "helm"
FETCH = ROOT / "scripts" / "fetch-helm.sh"


@pytest.fixture(scope="session")
def helm() -> Path:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        done = subprocess.run(
            [str(FETCH)], capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            pytest.fail(
                f"helm is not at {HELM.relative_to(ROOT)} and {FETCH.relative_to(ROOT)} "
                f"could not fetch it (run `make tools`): {done.stderr.strip()}"
            )
    version = subprocess.run(
        [str(HELM), "version", "--short"], capture_output=True, text=True, timeout=30, check=False
    )
    if version.returncode != 0 or not version.stdout.startswith("v3."):
        pytest.fail(f"{HELM} does not run as helm 3: {version.stdout}{version.stderr}")
    return HELM
