"""Talking to a running control plane: where it is and which token to send, from flags,
then the environment, then a config file readable by its owner only; and its answers
turned into data or one `error:` line.

The config file is `$CONTINUUM_CONFIG`, else `~/.config/continuum/config` (honouring
`$XDG_CONFIG_HOME`), in TOML:

    server = "https://continuum.example:8080"
    token = "cnt_key_..."

A file that others can read is refused (it holds a secret): `chmod 600` it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cli.errors import fail

DEFAULT_SERVER = "http://127.0.0.1:8080"
FAILED = 1  # the server refused or could not be reached (bad input is 2)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Control plane URL (else CONTINUUM_SERVER, else the config)."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Operator token (else CONTINUUM_TOKEN, else the config)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on standard output, nothing else.")]


def config_path() -> Path:
    given = os.environ.get("CONTINUUM_CONFIG")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "continuum" / "config"


def read_config(path: Path) -> dict[str, str]:
    """The file's settings; {} when it does not exist. Exits 2 on a file others can read,
    unreadable, not TOML, or with unknown keys."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        fail(f"{path}: mode {mode:04o} lets others read the token; run: chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read it: {exc}")
    except tomllib.TOMLDecodeError as exc:
        fail(f"{path}: not TOML: {exc}")
    unknown = sorted(set(data) - {"server", "token"})
    if unknown:
        fail(f"{path}: unknown key {unknown[0]!r} (known: server, token)")
    for key, value in data.items():
        if not isinstance(value, str):
            fail(f"{path}: {key}: must be a string")
    return {str(k): str(v) for k, v in data.items()}


def write_config(path: Path, server: str, token: str) -> None:
    """Create (or replace) the file with mode 0600 from the start, never wider."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"server = {_toml(server)}\ntoken = {_toml(token)}\n")
    tmp.replace(path)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Remote:
    server: str
    token: str

    def client(self, timeout_s: float | None = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout_s,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (None for 204); one `error:` line and exit otherwise."""
        with self.client() as client:
            try:
                response = client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                unreachable(self.server, exc)
        return answer(response)


def connect(server: str | None, token: str | None) -> Remote:
    """Flags, then CONTINUUM_SERVER / CONTINUUM_TOKEN, then the config file."""
    config = read_config(config_path())
    url = server or os.environ.get("CONTINUUM_SERVER") or config.get("server") or DEFAULT_SERVER
    secret = token or os.environ.get("CONTINUUM_TOKEN") or config.get("token")
    if not url.startswith(("http://", "https://")):
        fail(f"--server: must start with http:// or https:// (got {url!r})")
    if not secret:
        fail(
            "--token: no operator token: pass --token, set CONTINUUM_TOKEN, or put "
            f'token = "..." in {config_path()} (mode 0600)'
        )
    return Remote(server=url.rstrip("/"), token=secret)


def unreachable(server: str, exc: Exception) -> None:
    fail(
        f"cannot reach the control plane at {server} ({type(exc).__name__}): is "
        "`continuum server` running there? Point --server or CONTINUUM_SERVER at it",
        FAILED,
    )


def answer(response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    if response.is_success:
        return response.json()
    detail = response.text.strip()[:300]
    try:
        body = response.json()
        detail = str(body.get("detail") or body.get("title") or detail)
    except ValueError:
        pass
    if response.status_code == 401:
        fail(f"the server refused the token: {detail}", FAILED)
    # The API names the field of bad input (problem+json): that is the caller's to fix.
    code = 2 if response.status_code in (400, 422) else FAILED
    fail(f"{detail} (HTTP {response.status_code})", code)
