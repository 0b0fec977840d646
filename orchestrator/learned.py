"""Exit and escalation rates learned from what the agents count, the declared rate a prior.

Every agent reports, per partition or cascade stage it serves, the requests that reached
it and how many answered at each exit head (`exits[after]`) or, for a stage, answered
there (`exits["stage"]`), cumulative since it started (api.wire.PartitionMetrics). From
those counts, summed over every agent:

- an exit head after block b of model m was reached by the requests entering the
  partition that holds it minus those that ended at an earlier head of that partition;
  it fired `exits[b]` times;
- stage k of deployment d was reached `requests` times and answered `exits["stage"]`.

The rate the scenario uses is the declared one blended with the evidence, as if the
declared rate had been seen on `PRIOR_REQUESTS` requests: `(w * declared + fired) / (w +
reached)`. With no traffic it is the declared rate; after a few hundred requests it is
what happens. Counts that contradict themselves (more answers than requests) are dropped
and counted, never used. The partition keys are the desired state's
(`{deployment}/{model}/{first}-{last}`, `{deployment}/stage{k}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRIOR_REQUESTS = 20.0
DIGITS = 4  # rates are rounded: evidence noise below this must not churn the scenario


@dataclass
class Evidence:
    reached: int = 0
    fired: int = 0


@dataclass
class ExitEvidence:
    heads: dict[tuple[str, str], Evidence] = field(default_factory=dict)  # (model, after)
    stages: dict[tuple[str, int], Evidence] = field(default_factory=dict)  # (deployment, k)
    dropped: int = 0  # partitions whose counts contradict themselves

    def _add(self, table: dict[Any, Evidence], key: Any, reached: int, fired: int) -> None:
        evidence = table.setdefault(key, Evidence())
        evidence.reached += reached
        evidence.fired += fired


def gather(beats: dict[str, dict[str, Any]], models: dict[str, dict[str, Any]]) -> ExitEvidence:
    """The exit evidence in the heartbeats' metrics; `models` are scenario model entries."""
    out = ExitEvidence()
    for beat in beats.values():
        for key, metrics in (beat.get("metrics") or {}).items():
            parts = key.split("/")
            requests = int(metrics.get("requests", 0))
            exits = {str(k): int(v) for k, v in (metrics.get("exits") or {}).items()}
            if len(parts) == 2 and parts[1].startswith("stage") and parts[1][5:].isdigit():
                fired = exits.get("stage", 0)
                if not 0 <= fired <= requests:
                    out.dropped += 1
                    continue
                out._add(out.stages, (parts[0], int(parts[1][5:])), requests, fired)
            elif len(parts) == 3 and parts[1] in models and parts[2] != "fallback":
                # (A source's whole-model fallback copy, docs/agent.md: no exits to learn.)
                used = _partition(out, models[parts[1]], parts[2], requests, exits)
                out.dropped += 0 if used else 1
    return out


def _partition(
    out: ExitEvidence, model: dict[str, Any], span: str, requests: int, exits: dict[str, int]
) -> bool:
    first, _, last = span.partition("-")
    if not (first.isdigit() and last.isdigit()):
        return False
    blocks = [b["name"] for b in model["layers"][int(first) : int(last) + 1]]
    heads = {e["after"] for e in model.get("exits", [])}
    pending: list[tuple[str, int, int]] = []
    remaining = requests
    for block in blocks:
        if block not in heads:
            continue
        fired = exits.get(block, 0)
        if not 0 <= fired <= remaining:
            return False  # nothing of a contradictory report is used
        pending.append((block, remaining, fired))
        remaining -= fired
    for block, reached, fired in pending:
        out._add(out.heads, (model["id"], block), reached, fired)
    return True


def blend(declared: float, evidence: Evidence | None) -> float:
    """The declared rate with the evidence, as `PRIOR_REQUESTS` requests' worth of prior."""
    if evidence is None or evidence.reached == 0:
        return declared
    rate = (PRIOR_REQUESTS * declared + evidence.fired) / (PRIOR_REQUESTS + evidence.reached)
    return round(min(max(rate, 0.0), 1.0), DIGITS)


def learned_model(model: dict[str, Any], evidence: ExitEvidence) -> dict[str, Any]:
    """A scenario model entry with its exits' `prob` learned."""
    if not model.get("exits"):
        return model
    exits = [
        {**e, "prob": blend(e["prob"], evidence.heads.get((model["id"], e["after"])))}
        for e in model["exits"]
    ]
    return {**model, "exits": exits}
