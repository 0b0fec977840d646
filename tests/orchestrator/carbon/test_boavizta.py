"""The Boavizta client's life cycle: a close cuts short a request still in flight (the
control plane's start-up warm-up, most often), and the client starts a new worker after."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.carbon.boavizta import Boavizta, BoaviztaUnavailable, default_python


def test_close_ends_a_worker_still_answering_and_a_later_request_starts_anew() -> None:
    if not default_python().exists():
        pytest.fail(f"no Boavizta environment at {default_python()}: run `make boavizta`")
    client = Boavizta()
    outcome: list[BaseException | None] = []

    def warm() -> None:
        try:
            client.derive({"kind": "server", "archetype": "platform_compute_medium"})
        except BaseException as exc:  # what the warm-up would see
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=warm)
    thread.start()
    deadline = time.monotonic() + 30
    while client._proc is None and time.monotonic() < deadline:  # the worker has started
        time.sleep(0.01)
    worker = client._proc
    assert worker is not None, "the request never started a worker"
    client.close()
    thread.join(timeout=60)
    assert not thread.is_alive()
    # Killed while importing its tables, the worker gave no answer: the request says so.
    assert len(outcome) == 1 and isinstance(outcome[0], BoaviztaUnavailable), outcome
    assert worker.poll() is not None and client._proc is None

    # The client is not spent: the next request starts a worker of its own.
    try:
        assert client.catalog.server
    finally:
        client.close()
