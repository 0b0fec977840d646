from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from models_registry import ArtifactStore, CorruptArtifactError, ModelError


def test_put_get_by_content(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    data = b"partition bytes"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.has(sha) and store.get(sha) == data and store.open(sha) == data
    assert store.path(sha) == tmp_path / "store" / sha[:2] / sha
    assert store.put(data) == sha  # idempotent
    source = tmp_path / "model.onnx"
    source.write_bytes(b"other bytes")
    other = store.put(source)
    assert store.list() == sorted([sha, other])
    assert not [p for p in (tmp_path / "store").rglob(".tmp-*")]


def test_corruption_is_detected_on_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(b"weights")
    store.path(sha).write_bytes(b"weightz")
    assert not store.verify(sha)
    with pytest.raises(CorruptArtifactError, match="corrupt"):
        store.get(sha)
    assert store.put(b"weights") == sha  # storing again repairs it
    assert store.get(sha) == b"weights"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABCDEF" + "0" * 58, "0" * 63, ""])
def test_invalid_digests_never_touch_the_file_system(tmp_path: Path, bad: str) -> None:
    store = ArtifactStore(tmp_path / "absent")
    with pytest.raises(ModelError, match="not a sha256"):
        store.get(bad)
    with pytest.raises(ModelError, match="not a sha256"):
        store.has(bad)
    assert not (tmp_path / "absent").exists()


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not in the store"):
        ArtifactStore(tmp_path).get("0" * 64)
