from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agents import credentials
from agents.credentials import Credentials, CredentialsError


def test_none_before_enrollment(tmp_path: Path) -> None:
    assert credentials.load(tmp_path / "state") is None


def test_saved_0600_and_read_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    creds = Credentials("cam-1", "cnt_agent_secret", "http://cp:8080")
    path = credentials.save(state, creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert credentials.load(state) == creds


def test_saving_again_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    credentials.save(tmp_path, Credentials("a", "t1", "http://x"))
    credentials.save(tmp_path, Credentials("a", "t2", "http://x"))
    loaded = credentials.load(tmp_path)
    assert loaded is not None and loaded.agent_token == "t2"
    assert [p.name for p in tmp_path.iterdir()] == [credentials.FILE_NAME]


def test_two_agents_on_one_machine_keep_their_own(tmp_path: Path) -> None:
    credentials.save(tmp_path / "a", Credentials("a", "ta", "http://x"))
    credentials.save(tmp_path / "b", Credentials("b", "tb", "http://x"))
    a, b = credentials.load(tmp_path / "a"), credentials.load(tmp_path / "b")
    assert a is not None and b is not None and (a.device_id, b.device_id) == ("a", "b")


def test_a_corrupt_file_says_how_to_recover(tmp_path: Path) -> None:
    credentials.path_in(tmp_path).write_text("{not json")
    with pytest.raises(CredentialsError, match="delete it to enroll"):
        credentials.load(tmp_path)


def test_an_older_wider_state_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    credentials.save(state, Credentials("a", "t", "http://x"))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
