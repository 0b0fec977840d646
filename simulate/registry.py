"""Policies by name: the built-ins and the plug-ins of the entry-point group
`continuum.policies` (see `simulate.policy` for the Protocol)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import solver
from simulate.continuum import ContinuumPolicy
from simulate.errors import InputError
from simulate.neurosurgeon import NeurosurgeonPolicy
from simulate.policy import Policy, PolicyContext, PolicyFactory, SolverPolicy, StaticPolicy

GROUP = "continuum.policies"


def _without_hysteresis(context: PolicyContext) -> Policy:
    """`continuum` with a margin of 0: any plan the re-solve finds better is applied."""
    return ContinuumPolicy(context, margin=0.0)


def builtin() -> dict[str, PolicyFactory]:
    table: dict[str, PolicyFactory] = {
        "continuum": ContinuumPolicy,
        "continuum-no-hysteresis": _without_hysteresis,
        "static": StaticPolicy,
        "neurosurgeon": NeurosurgeonPolicy,
    }
    for name in solver.solvers():
        table.setdefault(name, SolverPolicy)
    return table


def plugins() -> dict[str, EntryPoint]:
    """The entry points of the group, by name (not loaded yet)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def known() -> list[str]:
    table = builtin()
    return [*table, *(n for n in sorted(plugins()) if n not in table)]


def make(context: PolicyContext) -> Policy:
    """The policy named `context.name`, built; InputError if it cannot be."""
    table = builtin()
    if context.name in table:
        return table[context.name](context)
    ep = plugins().get(context.name)
    if ep is None:
        raise InputError(f"--policy: unknown policy {context.name!r}")
    try:
        policy = ep.load()(context)
    except Exception as exc:  # a plug-in's own failure, named, not a traceback
        raise InputError(f"--policy {context.name}: the plug-in failed to load: {exc}") from None
    if not isinstance(policy, Policy):
        raise InputError(f"--policy {context.name}: {ep.value} made no Policy (no decide())")
    return policy


__all__ = ["GROUP", "builtin", "known", "make", "plugins"]
