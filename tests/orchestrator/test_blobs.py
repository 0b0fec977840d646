"""Artifacts' bytes in the database (orchestrator/blobs.py), on a migrated SQLite file:
stored in parts, restored whole and checked, refused when they hash otherwise."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import catalog
from orchestrator.artifacts import Artifacts
from orchestrator.blobs import PART_BYTES, DatabaseBlobs
from orchestrator.db import migrate
from orchestrator.db.engine import make_engine, session_factory
from orchestrator.db.tables import ArtifactBlob
from orchestrator.settings import Settings


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite file."""
    settings = Settings(data_dir=tmp_path / "db")
    settings.data_dir.mkdir()
    migrate.upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings)
    yield session_factory(engine)


def test_an_artifact_goes_in_by_parts_and_comes_back_checked(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    blobs = DatabaseBlobs(lambda: sessions)
    data = bytes(range(256)) * (PART_BYTES // 256 + 10)  # two parts
    one = Artifacts(tmp_path / "one", blobs)
    staged = tmp_path / "upload"
    staged.write_bytes(data)
    sha, size = one.adopt(staged)  # stored here, and shared
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with sessions() as session:
        assert session.query(ArtifactBlob).filter_by(sha256=sha).count() == 2

    other = Artifacts(tmp_path / "other", blobs)  # another replica: its own, empty store
    restored = other.local(sha)
    assert restored is not None and restored.read_bytes() == data
    assert other.local("0" * 64) is None  # in neither
    assert list(other.staging.glob("*.part")) == []  # nothing left behind

    with sessions() as session, session.begin():
        session.execute(update(ArtifactBlob).where(ArtifactBlob.part == 1).values(data=b"x"))
    third = Artifacts(tmp_path / "third", blobs)
    with pytest.raises(ValueError, match="hash otherwise"):
        third.local(sha)
    assert not third.has(sha) and list(third.staging.glob("*.part")) == []


def test_artifacts_stored_before_the_setting_are_copied_in_once(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    before = Artifacts(tmp_path / "store")  # the setting off: the store alone
    sha, size = before.put_bytes(b"an old model")
    with sessions() as session, session.begin():
        catalog.ensure_artifact(session, sha, size, "model")
        catalog.ensure_artifact(session, "f" * 64, 1, "model")  # recorded, stored nowhere
    blobs = DatabaseBlobs(lambda: sessions)
    local = before.local
    assert blobs.share_all(local) == 1 and blobs.held() == {sha}
    assert blobs.share_all(local) == 0  # already there
    restored = Artifacts(tmp_path / "other", blobs).local(sha)
    assert restored is not None and restored.read_bytes() == b"an old model"
