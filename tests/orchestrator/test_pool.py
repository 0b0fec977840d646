"""The solver pool's workers end with the control plane, even when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.pool import PARENT_CHECK_S

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for the control plane: it makes the pool, has one worker run a task (which
# starts it), prints that worker's pid, and waits to be killed.
PARENT = """
import os, sys, time
from orchestrator.pool import solver_pool
if __name__ == "__main__":
    pool = solver_pool(1)
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, init, reaps it).
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_worker_exits_when_the_control_plane_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    ) as parent:
        try:
            assert parent.stdout is not None
            worker = int(parent.stdout.readline())
            assert worker != parent.pid and _alive(worker)
            time.sleep(2 * PARENT_CHECK_S)
            assert _alive(worker)  # a live parent keeps its worker
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=10)
            deadline = time.monotonic() + 10 * PARENT_CHECK_S
            while _alive(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(worker), f"worker {worker} outlived its killed parent"
        finally:
            parent.kill()
