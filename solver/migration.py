"""Migration: the MB of weights a placement moves away from the previous plan.

The contract counts, for an app in `previous`, the `params_mb` of every block and exit
head (cascade: every stage model) now on a device other than the one it had. Weights are
tracked per unit, `(model, block)` or `(model, "exit:" + block)`; see docs/solver.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from solver.costs import CostModel
from solver.plan import Placement
from solver.scenario import App, PreviousApp

Unit = tuple[str, str]  # (model id, block name) or (model id, "exit:" + block name)


def previous_units(cm: CostModel, prev: PreviousApp) -> dict[Unit, set[str]]:
    """Where the previous plan had each block and exit head of one app.

    A set of devices, because a cascade may run one model in two stages: weights that are
    already on a device do not move to it.
    """
    units: dict[Unit, set[str]] = {}
    if prev.stages:
        for stage in prev.stages:
            m = cm.models.get(stage.model)
            if m is not None:
                for layer in m.layers:
                    units.setdefault((m.id, layer.name), set()).add(stage.device)
    elif prev.segments and prev.model in cm.models:
        m = cm.models[prev.model]
        names = [layer.name for layer in m.layers]
        exits = {ex.after for ex in m.exits}
        for seg in prev.segments:
            if seg.first not in names or seg.last not in names:
                continue
            for name in names[names.index(seg.first) : names.index(seg.last) + 1]:
                units.setdefault((m.id, name), set()).add(seg.device)
                if name in exits:
                    units.setdefault((m.id, "exit:" + name), set()).add(seg.device)
    return units


def placement_units(cm: CostModel, app: App, p: Placement) -> dict[Unit, set[str]]:
    """`previous_units` of the previous plan written from placement `p` (the same sets)."""
    units: dict[Unit, set[str]] = {}
    if p.stages is not None:
        for st, device in zip(app.cascade or (), p.stages, strict=False):
            m = cm.models.get(st.model)
            if m is not None:
                for layer in m.layers:
                    units.setdefault((m.id, layer.name), set()).add(device)
    elif p.blocks is not None and p.model in cm.shapes:
        s = cm.shapes[p.model]
        for i, device in enumerate(p.blocks):
            name = s.model.layers[i].name
            units.setdefault((p.model, name), set()).add(device)
            if s.has_exit(i):
                units.setdefault((p.model, "exit:" + name), set()).add(device)
    return units


class Migration:
    """The MB of weights each placement choice moves away from the previous plan.

    The previous plan is `scenario.previous`, or, when the caller has it as placements
    (`placed`: an incremental re-solve's plan in force), those: an app placed exactly
    there moves nothing, which spares the block-by-block count for thousands of fixed apps,
    and no plan document needs to be written for the scenario.
    """

    def __init__(self, cm: CostModel, placed: Mapping[str, Placement] | None = None) -> None:
        self.cm = cm
        prev = cm.scenario.previous
        self.placed: Mapping[str, Placement] = placed if placed is not None else {}
        self._previous = (
            {p.id: p for p in prev.apps if p.id in cm.apps}
            if prev is not None and placed is None
            else {}
        )
        self._units: dict[str, dict[Unit, set[str]]] = {}

    def applies(self, app_id: str) -> bool:
        return app_id in self._previous or (app_id in self.placed and app_id in self.cm.apps)

    def key(self, app_id: str) -> object:
        """What this app's migration terms read (None: it has none): two problems whose
        keys are equal price its placements' migration alike."""
        placed = self.placed.get(app_id)
        if placed is not None and app_id in self.cm.apps:
            return placed
        return self._previous.get(app_id)

    def unmoved(self, app_id: str, p: Placement) -> bool:
        placed = self.placed.get(app_id)
        return placed is p or placed == p  # most are the very object: no field compare

    def _units_of(self, app_id: str) -> dict[Unit, set[str]] | None:
        units = self._units.get(app_id)
        if units is None:
            placed = self.placed.get(app_id)
            if placed is not None and app_id in self.cm.apps:
                units = placement_units(self.cm, self.cm.apps[app_id], placed)
            else:
                prev = self._previous.get(app_id)
                if prev is None:
                    return None
                units = previous_units(self.cm, prev)
            self._units[app_id] = units
        return units

    def block_mb(self, app_id: str, model_id: str, i: int, device: str) -> float:
        units = self._units_of(app_id)
        if units is None:
            return 0.0
        s = self.cm.shapes[model_id]
        name = s.model.layers[i].name
        mb = 0.0
        if device not in units.get((model_id, name), ()):
            mb += s.model.layers[i].params_mb
        if s.has_exit(i) and device not in units.get((model_id, "exit:" + name), ()):
            mb += s.exit_params_mb[i]
        return mb

    def stage_mb(self, app_id: str, model_id: str, device: str) -> float:
        units = self._units_of(app_id)
        if units is None:
            return 0.0
        m = self.cm.models[model_id]
        return sum(
            layer.params_mb
            for layer in m.layers
            if device not in units.get((model_id, layer.name), ())
        )


def app_migration(mig: Migration, app: App, p: Placement) -> float:
    if not mig.applies(app.id) or mig.unmoved(app.id, p):
        return 0.0
    if p.stages is not None:
        assert app.cascade is not None
        return sum(
            mig.stage_mb(app.id, st.model, d) for st, d in zip(app.cascade, p.stages, strict=True)
        )
    assert p.model is not None and p.blocks is not None
    return sum(mig.block_mb(app.id, p.model, i, d) for i, d in enumerate(p.blocks))
