"""A content-addressed artifact store: blobs named by their sha256, checked on read.

Layout: ``ROOT/ab/abcdef...`` (the first two hex digits fan out the directory). Writes go
to a temporary file in the same directory and are renamed into place, so a reader never
sees half a blob. Every read re-hashes the blob and raises `CorruptArtifactError` if it
no longer matches its name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from models_registry.errors import ModelError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class CorruptArtifactError(ModelError):
    """A stored blob does not hash to its name any more."""


def validate_sha256(sha: str) -> str:
    """``sha`` if it is 64 lowercase hex digits, else ModelError (before any file access)."""
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ModelError(f"{sha!r} is not a sha256 digest (64 lowercase hex digits)")
    return sha


class ArtifactStore:
    """Blobs under ``root`` (created on first write), addressed by sha256."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        validate_sha256(sha)
        return self.root / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes | str | Path) -> str:
        """Store bytes, or the content of a file given by path; return its sha256."""
        if isinstance(data, bytes | bytearray | memoryview):
            blob = bytes(data)
        else:
            source = Path(data)
            if not source.is_file():
                raise ModelError(f"{source}: no such file to store")
            blob = source.read_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        target = self.path(sha)
        if target.is_file() and self._hash_file(target) == sha:
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return sha

    def get(self, sha: str) -> bytes:
        """The blob's bytes, after checking they still hash to ``sha``."""
        target = self.path(sha)
        if not target.is_file():
            raise ModelError(f"artifact {sha} is not in the store at {self.root}")
        blob = target.read_bytes()
        actual = hashlib.sha256(blob).hexdigest()
        if actual != sha:
            raise CorruptArtifactError(
                f"artifact {sha} is corrupt: its content hashes to {actual}; "
                f"delete {target} and store it again"
            )
        return blob

    open = get

    def verify(self, sha: str) -> bool:
        """True if the blob is present and intact."""
        target = self.path(sha)
        return target.is_file() and self._hash_file(target) == sha

    def list(self) -> list[str]:
        """Digests of every stored blob, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.glob("??/*") if _SHA256.fullmatch(p.name) and p.is_file()
        )

    @staticmethod
    def _hash_file(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
