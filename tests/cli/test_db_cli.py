"""`continuum db`: against a temporary SQLite file and the real PostgreSQL, as a user runs
it (the installed console script in a subprocess), and its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app

CONTINUUM = Path(sys.executable).with_name("continuum")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Start from a clean slate: a CONTINUUM_* variable of the developer's shell must not
    # point the test at their real database.
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    return subprocess.run(
        [str(CONTINUUM), "db", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.strip()


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_migrates_the_embedded_sqlite_database(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert _ok(_run("upgrade", CONTINUUM_DATA_DIR=data)) == "database at 0008"
    assert (tmp_path / "data" / "continuum.db").is_file()
    assert _ok(_run("current", CONTINUUM_DATA_DIR=data)) == "0008"
    assert _ok(_run("downgrade", "base", CONTINUUM_DATA_DIR=data)) == "database at none"


def test_migrates_postgresql(pg_url: str, tmp_path: Path) -> None:
    env = {"CONTINUUM_DATABASE_URL": pg_url, "CONTINUUM_DATA_DIR": str(tmp_path)}
    try:
        assert _ok(_run("upgrade", **env)) == "database at 0008"
        assert _ok(_run("current", **env)) == "0008"
    finally:
        # pg_url is shared by the session: leave it empty, as found.
        assert _ok(_run("downgrade", "base", **env)) == "database at none"
    assert not (tmp_path / "continuum.db").exists()  # the URL wins over the data dir


def test_an_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/continuum"
    line = _one_line_error(
        _run("upgrade", CONTINUUM_DATABASE_URL=url, CONTINUUM_DATA_DIR=str(tmp_path))
    )
    assert "Connection refused" in line


# The rest runs in-process: the same code path, without a Python start-up each time.
def _in_process(*args: str, **env: str) -> Result:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CONTINUUM_")}
    return CliRunner().invoke(app, ["db", *args], env={**unset, **env})


def test_a_new_database_is_at_none_and_upgrades_to_a_given_revision(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    current = _in_process("current", CONTINUUM_DATA_DIR=data)
    assert (current.exit_code, current.stdout) == (0, "none\n")
    upgraded = _in_process("upgrade", "--revision", "0001", CONTINUUM_DATA_DIR=data)
    assert (upgraded.exit_code, upgraded.stdout) == (0, "database at 0001\n")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "CONTINUUM_DATABASE_URL: Could not parse"),
        ("mysql://root@127.0.0.1/continuum", "unsupported database 'mysql'"),
        ("postgresql://postgres@127.0.0.1/continuum_no_such_db", "does not exist"),
    ],
)
def test_a_bad_database_url_fails_with_one_line(url: str, says: str, tmp_path: Path) -> None:
    result = _in_process("current", CONTINUUM_DATABASE_URL=url, CONTINUUM_DATA_DIR=str(tmp_path))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert says in result.stderr


@pytest.mark.parametrize("command", [["upgrade", "--revision", "9999"], ["downgrade", "9999"]])
def test_an_unknown_revision_fails_with_one_line(command: list[str], tmp_path: Path) -> None:
    result = _in_process(*command, CONTINUUM_DATA_DIR=str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == "error: Can't locate revision identified by '9999'\n"
