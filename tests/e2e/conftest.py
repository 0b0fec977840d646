"""End-to-end tests: real control plane and agent processes on localhost.

The process fixture (every process stopped by a finalizer, whatever the outcome) is the
agent tests' one."""

from __future__ import annotations

from tests.agents.conftest import processes

__all__ = ["processes"]
