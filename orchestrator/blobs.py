"""Artifacts' bytes in the database (`artifacts_in_database`), for replicas that share no
volume: every artifact stored on one replica is copied into `artifact_blobs` in parts,
and a replica asked for an artifact it lacks restores it from there into its own store,
checked against its sha256, before serving or reading it.

Parts of 4 MB keep each row well under PostgreSQL's 1 GB field limit and each statement's
memory small; an artifact is written in one transaction, so a reader sees all its parts or
none (a replica killed mid-copy leaves nothing half-stored).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.tables import Artifact, ArtifactBlob

log = logging.getLogger(__name__)

PART_BYTES = 4 * 1024 * 1024


class DatabaseBlobs:
    """`orchestrator.artifacts.Blobs` on the control plane's database. `sessions` returns
    the session factory (None until the control plane has started)."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session] | None]) -> None:
        self._sessions = sessions

    def _session(self) -> Session:
        factory = self._sessions()
        if factory is None:
            raise RuntimeError("the database is not open yet")
        return factory()

    def save(self, sha256: str, path: Path) -> None:
        """Copy the stored file of `sha256` in, unless it is there already."""
        with self._session() as session:
            if session.get(ArtifactBlob, (sha256, 0)) is not None:
                return
            with path.open("rb") as handle:
                part = 0
                while chunk := handle.read(PART_BYTES):
                    session.add(ArtifactBlob(sha256=sha256, part=part, data=chunk))
                    session.flush()  # one part in memory at a time
                    part += 1
            try:
                session.commit()
            except IntegrityError:  # another replica stored the same bytes meanwhile
                session.rollback()

    def held(self) -> set[str]:
        """The artifacts the database holds."""
        with self._session() as session:
            return set(session.scalars(select(ArtifactBlob.sha256).where(ArtifactBlob.part == 0)))

    def share_all(self, local: Callable[[str], Path | None]) -> int:
        """Copy in every recorded artifact the database lacks and `local` finds on this
        replica: artifacts stored before the setting was turned on. How many."""
        with self._session() as session:
            recorded = set(session.scalars(select(Artifact.sha256)))
        copied = 0
        for sha256 in sorted(recorded - self.held()):
            path = local(sha256)
            if path is not None:
                self.save(sha256, path)
                copied += 1
        return copied

    def restore(self, sha256: str, directory: Path) -> Path | None:
        """The bytes of `sha256` in a new file in `directory`, checked, or None when the
        database does not hold them."""
        fd, name = tempfile.mkstemp(dir=directory, suffix=".part")
        digest = hashlib.sha256()
        found = False
        try:
            with os.fdopen(fd, "wb") as out, self._session() as session:
                parts = session.scalars(
                    select(ArtifactBlob.data)
                    .where(ArtifactBlob.sha256 == sha256)
                    .order_by(ArtifactBlob.part)
                    .execution_options(yield_per=1)
                )
                for data in parts:
                    found = True
                    digest.update(data)
                    out.write(data)
            if not found:
                Path(name).unlink(missing_ok=True)
                return None
            if digest.hexdigest() != sha256:
                raise ValueError(f"artifact {sha256}: the database's bytes hash otherwise")
            return Path(name)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
