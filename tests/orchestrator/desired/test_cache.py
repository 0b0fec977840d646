"""Which agents have news: only those whose desired state changed, or a rollout's targets."""

from __future__ import annotations

from typing import Any

from orchestrator.desired.cache import DesiredCache


def _states(version: int, **partitions: list[str]) -> dict[str, dict[str, Any]]:
    return {
        d: {"device_id": d, "version": version, "partitions": keys, "sources": []}
        for d, keys in partitions.items()
    }


def test_only_the_agents_whose_state_changed_are_answered() -> None:
    cache = DesiredCache()
    cache.install(5, _states(5, cam=["a"], edge=["b"], idle=[]), frozenset())
    cache.install(6, _states(6, cam=["a"], edge=["b", "c"], idle=[]), frozenset())
    assert cache.news("edge", 5)
    assert not cache.news("cam", 5) and not cache.news("idle", 5)
    # An agent two revisions behind whose state changed in between is answered.
    cache.install(7, _states(7, cam=["a"], edge=["b", "c"], idle=[]), frozenset())
    assert cache.news("edge", 5) and not cache.news("edge", 6)
    assert not cache.news("cam", 5) and not cache.news("cam", 7)


def test_a_rollouts_targets_are_answered_even_when_their_state_is_the_same() -> None:
    # The switch of a rollout keeps a target's state when it only gained a partition:
    # it must still report the switch's revision, or the rollout never settles.
    cache = DesiredCache()
    cache.install(5, _states(5, cam=["a"], edge=[]), frozenset())
    cache.install(6, _states(6, cam=["a"], edge=["b"]), frozenset({"edge"}))
    assert cache.news("edge", 5)
    cache.install(7, _states(7, cam=["a"], edge=["b"]), frozenset({"edge"}))
    assert cache.news("edge", 6) and not cache.news("edge", 7)
    assert not cache.news("cam", 5)


def test_a_revision_this_replica_never_served_is_answered() -> None:
    cache = DesiredCache()
    cache.install(9, _states(9, cam=["a"]), frozenset())
    assert cache.news("cam", 8)  # unknown to this cache (another replica's, a restart's)
    assert cache.news("cam", -1)  # an agent's first poll
    assert cache.news("new-device", 8)
    assert not cache.news("cam", 9)


def test_the_cache_never_goes_back_to_an_older_revision() -> None:
    cache = DesiredCache()
    cache.install(9, _states(9, cam=["a"]), frozenset())
    assert not cache.install(8, _states(8, cam=[]), frozenset())
    assert cache.version == 9 and cache.states["cam"]["partitions"] == ["a"]


def test_freshness() -> None:
    cache = DesiredCache()
    assert not cache.fresh(0, 10.0)
    cache.install(3, _states(3, cam=[]), frozenset())
    assert cache.fresh(3, 10.0) and not cache.fresh(4, 10.0) and not cache.fresh(3, 0.0)
    cache.stale = True
    assert not cache.fresh(3, 10.0)
