"""What the services need of the control plane, as a protocol the services own.

The services depend on this, never on `ControlPlane`: the control plane satisfies it, and
the tests hand the services an in-memory implementation over a real database and the
in-process live state (`tests/orchestrator/services/harness.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from orchestrator.artifacts import Artifacts
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.events import EventBus
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings

T = TypeVar("T")


class Context(Protocol):
    settings: Settings
    live: LiveState
    events: EventBus
    artifacts: Artifacts
    metrics: Metrics
    boavizta: Boavizta  # Boavizta's worker, for derived carbon figures (issue 14)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(session, *args) in a worker thread, in one transaction."""
        ...

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the process pool (CPU-heavy work: ONNX analysis, quantization)."""
        ...

    async def record_trigger(
        self, kind: str, target: str, reason: str, observed_at: float, *, replan: bool = False
    ) -> None:
        """A trigger in the audit log and on the event stream; with `replan`, a re-solve."""
        ...

    async def request_replan(
        self,
        reason: str,
        *,
        solver: str | None = None,
        wait: bool = False,
        observed_at: float | None = None,
        force: bool = False,
    ) -> None:
        """Ask the planner for a re-solve (coalesced with any others pending)."""
        ...

    def invalidate_desired(self) -> None:
        """The agents' cached desired states no longer hold (a device or deployment went)."""
        ...

    def forget_agent(self, device_id: str) -> None:
        """A deleted device: its agent token stops authenticating at once."""
        ...

    def links_changed(self) -> None:
        """The declared links changed: the reconcile loop re-reads them."""
        ...
