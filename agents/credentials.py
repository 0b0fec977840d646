"""The agent's credential: its device id and agent token, kept in its state directory.

Written once after enrollment, so a restart does not enroll again (the enrollment token
may have expired by then). The file is created 0600 under a temporary name in the same
directory, fsynced, then renamed over the old one: a crash leaves the old file or the
new one, never half of one, and the token is never readable by others, not even briefly.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "credentials.json"


class CredentialsError(ValueError):
    pass


@dataclass(frozen=True)
class Credentials:
    device_id: str
    agent_token: str
    server: str


def path_in(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def load(state_dir: Path) -> Credentials | None:
    """The saved credential, or None when the agent has not enrolled yet."""
    path = path_in(state_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(str(data["device_id"]), str(data["agent_token"]), str(data["server"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise CredentialsError(
            f"{path} is unreadable or corrupt; delete it to enroll this agent again"
        ) from None


def private_dir(state_dir: Path) -> Path:
    """The state directory, created 0700 and tightened to it when it exists (it holds the
    credential and the saved desired state, with the data-plane tokens this agent presents)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = state_dir.stat()
    # Only a directory this user owns: one an operator handed in is theirs to set.
    if info.st_uid == os.getuid() and info.st_mode & 0o777 != 0o700:
        state_dir.chmod(0o700)
    return state_dir


def save(state_dir: Path, creds: Credentials) -> Path:
    private_dir(state_dir)
    path = path_in(state_dir)
    # mkstemp creates the file 0600 with O_EXCL: no window in which it is wider.
    fd, tmp = tempfile.mkstemp(prefix=".credentials.", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "device_id": creds.device_id,
                    "agent_token": creds.agent_token,
                    "server": creds.server,
                },
                handle,
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget(state_dir: Path) -> None:
    path_in(state_dir).unlink(missing_ok=True)
