"""Schemathesis over the whole API of a real `continuum server` process, on SQLite and on
PostgreSQL + Redis, with the operator's token, an agent's and none; and over an agent's
data plane. No answer may be a 5xx, and every answer (errors included) must be one the
OpenAPI document declares, with its content type and schema (issue #18).

Deterministic (`derandomize`) and bounded: a few examples per operation and caller
(`plan`), no shrinking. The module took 166 s on two cores that eight other test runs
were loading (load average 17; 43 s of CPU in the test process, a third of the wall time
spent waiting for the two servers to start); `CONTINUUM_FUZZ_SCALE=8` is a longer hunt.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from numpy.lib import format as npy_format
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agents import tensorframe
from agents.dataplane import create_app
from tests.agents.test_dataplane import TOKEN, Node, _partitions
from tests.harness.processes import CONTINUUM, ControlPlane, Launcher, clean_env
from tests.harness.services import (
    ServiceDown,
    check_redis,
    delete_prefix,
    fresh_database,
    new_prefix,
)

ADMIN = "cnt_admin_fuzz-test-operator-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# An endless event stream: nothing to fuzz, and no answer ever ends.
SKIP = {("GET", "/v1/events")}
# Examples per operation and generation mode; CONTINUUM_FUZZ_SCALE multiplies them for a
# longer hunt by hand (CI runs the default).
SCALE = int(os.environ.get("CONTINUUM_FUZZ_SCALE", "1"))
ALL = list(schemathesis.GenerationMode)
POSITIVE = [schemathesis.GenerationMode.POSITIVE]


def plan(who: str, path: str) -> tuple[int, list[schemathesis.GenerationMode]]:
    """(examples, generation modes) of one operation for one caller. The operator's token
    reaches every route's validation; an agent's only its own routes (elsewhere it is a
    401/403 whatever the input); no token is a 401 everywhere."""
    if who == "operator":
        return 4 * SCALE, ALL
    if who == "agent" and path.startswith(("/v1/agents/", "/v1/artifacts/")):
        return 3 * SCALE, ALL
    return 1 * SCALE, POSITIVE


@dataclass
class Server:
    url: str
    agent_token: str
    device_id: str


def _start(tmp: Path, launcher: Launcher, env: dict[str, str]) -> Server:
    env = {
        "CONTINUUM_DATA_DIR": str(tmp / "data"),
        "CONTINUUM_ADMIN_TOKEN": ADMIN,
        "CONTINUUM_LONG_POLL_MAX_S": "0.2",
        "CONTINUUM_MAX_UPLOAD_MB": "1",
        "CONTINUUM_SOLVER_TIME_LIMIT_S": "2",
        **env,
    }
    if "CONTINUUM_DATABASE_URL" in env:
        # A server on PostgreSQL does not migrate at start: the operator's step.
        done = subprocess.run(
            [*CONTINUUM, "db", "upgrade"], env={**launcher.env, **env},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    plane = ControlPlane(launcher, "server", env, tmp / "server.log", ["--log-level", "warning"])
    url = plane.wait_ready(90).url
    admin = {"Authorization": f"Bearer {ADMIN}"}
    token = httpx.post(f"{url}/v1/enrollment-tokens", json={}, headers=admin).json()["token"]
    enrolled = httpx.post(
        f"{url}/v1/agents/enroll",
        json={
            "token": token, "name": "fuzz-1", "tier": "edge", "gflops": 50, "memory_mb": 512,
            "power_w": {"idle": 5, "busy": 20}, "data_plane_url": "http://127.0.0.1:9",
        },
    )  # fmt: skip
    assert enrolled.status_code == 201, enrolled.text
    return Server(url, enrolled.json()["agent_token"], "fuzz-1")


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    launcher = Launcher(env=clean_env())
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    if request.param == "sqlite":
        try:
            yield _start(tmp, launcher, {})
        finally:
            launcher.stop_all()
        return
    try:
        redis_url = check_redis()
        prefix = new_prefix("continuum-fuzz")
        with fresh_database("continuum_fuzz") as database_url:
            env = {
                "CONTINUUM_DATABASE_URL": database_url,
                "CONTINUUM_REDIS_URL": redis_url,
                "CONTINUUM_REDIS_PREFIX": prefix,
            }
            try:
                yield _start(tmp, launcher, env)
            finally:
                launcher.stop_all()
                delete_prefix(redis_url, prefix)
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


def fuzz(url: str, schema_url: str, headers: dict[str, str], who: str) -> list[str]:
    """Every operation of the document at schema_url; the failures, one line each."""
    schema = schemathesis.openapi.from_url(schema_url)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        examples, modes = plan(who, operation.path)
        for mode in modes:

            @settings(
                max_examples=examples,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(base_url=url, headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                pass  # no parameters to break: nothing negative to send
            except (Exception, BaseExceptionGroup) as exc:
                first = str(exc).strip().splitlines()[:12]
                failures.append(f"{name} ({mode.value}): " + " | ".join(first))
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("who", ["operator", "agent", "anonymous"])
def test_the_api_answers_every_input_as_documented(server: Server, who: str) -> None:
    headers = {
        "operator": {"Authorization": f"Bearer {ADMIN}"},
        "agent": {"Authorization": f"Bearer {server.agent_token}"},
        "anonymous": {},
    }[who]
    failures = fuzz(server.url, f"{server.url}/openapi.json", headers, who)
    assert not failures, "\n".join(failures)
    # The server survived it all, and its reads still answer.
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert httpx.get(f"{server.url}/v1/devices", headers=admin).status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200


# -- an agent's data plane ---------------------------------------------------------------
@pytest.fixture(scope="module")
def dataplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Two data planes serving a two-partition deployment `d` (tests/agents)."""
    tmp = tmp_path_factory.mktemp("dataplane")
    a, b = Node("a", tmp), Node("b", tmp)
    try:
        a.start()
        b.start()
        _partitions(a, b, None, 0.0)
        yield a
    finally:
        a.stop()
        b.stop()


@pytest.mark.slow
def test_the_agent_data_plane_routes_never_answer_5xx(dataplane: Node) -> None:
    # Its FastAPI app's own document: paths and query parameters (bodies are raw there).
    failures = _fuzz_dict(dataplane.url, create_app(dataplane.dp).openapi())
    assert not failures, "\n".join(failures)


DESCRS = ["<f4", ">f8", "|u1", "|b1", "<i8", "|O", "<U5", "|V8", "<c8", "bogus"]
DIMS = st.integers(min_value=0, max_value=2**40) | st.integers(min_value=0, max_value=8)


@st.composite
def npy_bodies(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=256))
    header = {
        "descr": draw(st.sampled_from(DESCRS)),
        "fortran_order": draw(st.booleans()),
        "shape": tuple(draw(st.lists(DIMS, max_size=5))),
    }
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + draw(st.binary(max_size=64))


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=256))
    entry = st.fixed_dictionaries(
        {
            "name": st.text(max_size=4),
            "dtype": st.sampled_from(["float32", "int64", "bool", "object", "?"]),
            "shape": st.lists(DIMS | st.integers(min_value=-3, max_value=-1), max_size=5),
        }
    )
    header = json.dumps({"tensors": draw(st.lists(entry, max_size=3)), "meta": {}}).encode()
    body = tensorframe.MAGIC + len(header).to_bytes(4, "little") + header
    return body + draw(st.binary(max_size=64))


@pytest.mark.slow
def test_the_agent_data_plane_refuses_malformed_tensors_with_a_problem(dataplane: Node) -> None:
    """.npy bodies and tensor frames that lie about their shapes, dtypes and sizes, sent
    with the deployment's valid token: a 4xx problem+json, or a 200 for a real input."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    frame_type = {"Content-Type": tensorframe.MEDIA_TYPE}
    with httpx.Client(base_url=dataplane.url, headers=auth, timeout=30) as client:

        @settings(max_examples=150, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(
            npy=npy_bodies(),
            frame=frames(),
            where=st.sampled_from(["/v1/hop/d/m/1-1", "/v1/results/d"]),
        )
        def run(npy: bytes, frame: bytes, where: str) -> None:
            for response in (
                client.post("/v1/infer/d", content=npy),
                client.post(where, content=frame, headers=frame_type),
            ):
                assert response.status_code < 500, response.text
                if response.status_code >= 400:
                    assert response.headers["content-type"] == "application/problem+json"

        run()


def _fuzz_dict(url: str, spec: dict[str, Any]) -> list[str]:
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=20, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures
