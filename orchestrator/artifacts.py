"""The control plane's artifact store: the registry's content-addressed `ArtifactStore`,
plus a staging directory for streamed uploads on the same file system.

Every lookup by name validates it as 64 lowercase hex digits first, so no string from a
request reaches the file system unchecked.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol

from models_registry.store import ArtifactStore

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What a full volume raises: no space left, or the user's quota used up.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def is_sha256(value: str) -> bool:
    return bool(_SHA256.fullmatch(value))


class Blobs(Protocol):
    """A copy of every artifact that replicas share (`orchestrator.blobs`)."""

    def save(self, sha256: str, path: Path) -> None: ...

    def restore(self, sha256: str, directory: Path) -> Path | None: ...


class Artifacts:
    """`blobs`: where artifacts are copied to, and restored from when this replica's store
    lacks one (replicas without a shared volume); None: the store alone."""

    def __init__(self, root: Path, blobs: Blobs | None = None) -> None:
        self.root = root
        self.store = ArtifactStore(root)
        self.blobs = blobs
        # Not two characters long, so the store's listing ("??/<sha>") never sees it.
        self.staging = root / ".staging"

    def temp_file(self) -> Path:
        """A fresh temporary path beside the store (for streamed uploads)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.staging, suffix=".part")
        os.close(fd)
        return Path(name)

    def path(self, sha256: str) -> Path:
        return self.store.path(sha256)

    def has(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.store.has(sha256)

    def local(self, sha256: str) -> Path | None:
        """The file of `sha256` in this replica's store, restored from `blobs` first when
        it is not there; None when neither holds it. Blocking: run it in a thread."""
        if not is_sha256(sha256):
            return None
        if self.store.has(sha256):
            return self.path(sha256)
        if self.blobs is None:
            return None
        self.staging.mkdir(parents=True, exist_ok=True)
        restored = self.blobs.restore(sha256, self.staging)
        if restored is None:
            return None
        try:
            self.store.put(restored)
        finally:
            restored.unlink(missing_ok=True)
        return self.path(sha256)

    def share(self, sha256: str) -> None:
        """Copy a stored artifact to `blobs` (nothing without). Blocking."""
        if self.blobs is not None:
            self.blobs.save(sha256, self.path(sha256))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.store.put(data), len(data)

    def adopt(self, tmp: Path) -> tuple[str, int]:
        """Store a finished temporary file (and share it), remove it; (sha256, size)."""
        try:
            sha = self.store.put(tmp)
            self.share(sha)
            return sha, self.path(sha).stat().st_size
        finally:
            tmp.unlink(missing_ok=True)

    def sweep(self, older_than_s: float = 0.0) -> tuple[int, int]:
        """Remove what interrupted writes left: streamed uploads (`.staging/*.part`) and
        the store's temporary blobs (`??/.tmp-*`), when unmodified for `older_than_s`
        (another replica on a shared store may be writing a young one). Returns (files,
        bytes) removed."""
        cutoff = time.time() - older_than_s
        leftovers = [*self.staging.glob("*.part"), *self.root.glob("??/.tmp-*")]
        files = size = 0
        for path in leftovers:
            try:
                stat = path.stat()
                if stat.st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue  # another replica swept it first
            files += 1
            size += stat.st_size
        return files, size
