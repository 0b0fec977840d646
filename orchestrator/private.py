"""Files only the control plane's user may read: its data directory (0700) and the
embedded database (0600), which hold token hashes, plans and the audit log.

Modes are set at creation (no window in which a file is wider) and tightened on existing
paths, so an install made before this rule is corrected at its next start.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create the file empty (0600) when missing; tighten it when it exists."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(fd)
    return path


def _tighten(path: Path, mode: int) -> None:
    # Only what this user owns: a shared directory handed in by an operator (owned by
    # root, say) is theirs to set, and chmod would fail on it anyway.
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o777 != mode:
        path.chmod(mode)
