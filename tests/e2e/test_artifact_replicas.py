"""Artifacts across control-plane replicas that share no volume (issue 18): two server
processes on one PostgreSQL and one Redis, each with its own data directory, and
`CONTINUUM_ARTIFACTS_IN_DATABASE` on. A model uploaded to one is served by the other
(restored from the database, byte for byte), and the other can build on it (an exit head
checked against the model's file). A third replica without the setting, on the same
database, has only its own empty store: the recorded artifact is a 404 there."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models_registry import analyse_model, make_exit_head, randomize
from tests.harness.emulated import ADMIN_TOKEN, LIGHT
from tests.harness.ports import free_port
from tests.harness.processes import CONTINUUM, Launcher, Proc, wait_until

pytestmark = pytest.mark.slow


class Replica:
    def __init__(self, launcher: Launcher, tmp: Path, name: str, env: dict[str, str]) -> None:
        port = free_port()
        self.data = tmp / name
        self.proc: Proc = launcher.start(name, ["server"], {
            **env, "CONTINUUM_PORT": str(port), "CONTINUUM_DATA_DIR": str(self.data),
        }, tmp / f"{name}.log")  # fmt: skip
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=60,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )  # fmt: skip
        wait_until(f"replica {name}", self._up, 90, [self.proc])

    def _up(self) -> bool:
        try:
            return self.client.get("/v1/models").status_code == 200
        except httpx.HTTPError:
            return False

    def stored(self) -> list[Path]:
        return sorted(p for p in (self.data / "artifacts").glob("??/*") if p.is_file())


@pytest.fixture
def env(redis_url: str, live_prefix: str, fresh_pg: str) -> dict[str, str]:
    made = {
        "CONTINUUM_DATABASE_URL": fresh_pg, "CONTINUUM_REDIS_URL": redis_url,
        "CONTINUUM_REDIS_PREFIX": live_prefix, "CONTINUUM_ADMIN_TOKEN": ADMIN_TOKEN,
        "CONTINUUM_HOST": "127.0.0.1", "CONTINUUM_ARTIFACTS_IN_DATABASE": "true",
    }  # fmt: skip
    migrated = subprocess.run(
        [*CONTINUUM, "db", "upgrade"], env={**os.environ, **made}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return made


@pytest.fixture
def replicas(
    tmp_path: Path, env: dict[str, str], group_processes: Launcher
) -> Iterator[tuple[Replica, Replica]]:
    a = Replica(group_processes, tmp_path, "a", env)
    b = Replica(group_processes, tmp_path, "b", env)
    yield a, b
    a.client.close()
    b.client.close()


def test_an_upload_to_one_replica_is_served_by_another(
    replicas: tuple[Replica, Replica], tmp_path: Path, env: dict[str, str],
    group_processes: Launcher,
) -> None:  # fmt: skip
    a, b = replicas
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    data = model.SerializeToString()
    created = a.client.post("/v1/models", files={"file": ("sq.onnx", data)}, data={"id": "sq"})
    assert created.status_code == 201, created.text
    sha = hashlib.sha256(data).hexdigest()
    assert b.stored() == [] and [p.name for p in a.stored()] == [sha]

    got = b.client.get(f"/v1/artifacts/{sha}")
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == sha and got.content == data
    assert [p.name for p in b.stored()] == [sha]  # restored into b's own store

    # b builds on the model a stored: an exit head is checked against the model's file.
    head = make_exit_head(analyse_model(model), "r34", num_classes=10, seed=0)
    added = b.client.post(
        "/v1/models/sq/exits", files={"file": ("h.onnx", head.SerializeToString())},
        data={"after": "r34"},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    head_sha = hashlib.sha256(head.SerializeToString()).hexdigest()
    served = a.client.get(f"/v1/artifacts/{head_sha}")  # and a serves what b stored
    assert served.status_code == 200 and served.content == head.SerializeToString()

    # Without the setting a replica has its own store only: recorded, yet not here.
    c = Replica(group_processes, tmp_path, "c",
                {**env, "CONTINUUM_ARTIFACTS_IN_DATABASE": "false"})  # fmt: skip
    try:
        missing = c.client.get(f"/v1/artifacts/{sha}")
        assert missing.status_code == 404 and "missing from the store" in missing.text
    finally:
        c.client.close()
