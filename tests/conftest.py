"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

# The fleet harness as fixtures (PostgreSQL, Redis, processes), for every package.
pytest_plugins = ["tests.harness.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the clone, as CI has it. Missing is a failure, never a skip."""
    if not (SHARED / "scenarios").is_dir():
        pytest.fail(
            f"{SHARED}/scenarios not found: clone the project next to the shared/ folder "
            "(CI lays it out that way)"
        )
    return SHARED


@pytest.fixture(scope="session")
def shared_scenarios(shared_dir: Path) -> list[Path]:
    files = sorted((shared_dir / "scenarios").glob("*.yaml"))
    if not files:
        pytest.fail(f"no scenarios in {shared_dir / 'scenarios'}")
    return files
