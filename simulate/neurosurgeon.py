"""`neurosurgeon` in the simulator: the solver's own choice, re-decided per app only when
a bandwidth that can change it moved.

The policy decides at the same steps as any baseline (`simulate.policy.SolverPolicy`: the
first, a device lost or back, a traced bandwidth past what matters), and its plan is the
plan `solver.solve(..., solver="neurosurgeon")` makes of the scenario of now, app for app
(tests/simulate/test_neurosurgeon.py runs both, step by step). What it saves is scoring
apps whose choice cannot have moved:

- each app's candidates are laid out once per fleet shape (`solver.splits.AppSplits`,
  the traced links read from a figure vector), with lower bounds on their keys at every
  traced link's best figure (`PolicyContext.ceilings`, the most its trace ever carries):
  a key can only be larger at the figures of any moment;
- an app's choice, made by the solver's rule at the figures of now with its best key K,
  depends only on the traced links of the candidates whose best-figure bound is at most
  K: every other candidate's key is above K whatever the figures. The choice is cached
  under the exact figures of those links (no quantising: the traces loop, so exact
  figures recur), and reused whenever they recur.

With a migration weight the choice also reads the plan in force: then nothing is cached,
every app is chosen afresh (still only bounding most candidates).

A device lost or back lays every app out again, on the new shape; a device lost takes each
app's layout from the one before, less the hosts gone, where no route it keeps crosses one
(`solver.splitshrunk`: the same arrays; on a day of the 200-device fleet 1,451 layouts
taken, 116 made afresh after the first step's 100, 42% of the CPU of its shape changes).
On the 200-device fleet every camera is a candidate host of every app, so no app's
candidates stay the same; yet a camera is rarely an app's choice, and dropping every cache
at each of a day's 19 shape changes made half of the day's choices afresh
(bench/neurosurgeon_day.py: 140,127 of them, 70,903 when carried; 84.9 s of CPU, 70.7 s).
So an app's cached choices are carried over (`_App.carry`) when its candidates on the
hosts both shapes have read the very same things (`AppSplits.reads`: the app, its routes'
RTT, joules per MB, untraced Mbit/s and traced links, its hosts' figures) and keep their
order:
- a host lost only takes candidates away, and the least key among the rest, with ties to
  the first, is still the cached choice whenever that is not on the lost host (such an
  entry is dropped);
- a host back adds candidates: an entry stays only when every one of them is bounded, at
  every traced link's best figure, above the key of its choice (so none can beat or tie
  it at any figures).

On the fleet's first step, and when a device is lost or back, the answer is the plan
document of every app's choice; at other steps it is a `PlanChange` of the apps whose
choice moved, which the simulator puts in force by what those apps touch (the plan and
its evaluation are the same as the document's: tests/simulate/test_scoring.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

import solver
from simulate.policy import Moment, PlanChange, PolicyContext
from solver.baselines import Scorer
from solver.plan import Placement, Status
from solver.scenario import App
from solver.splitchoice import AtBest, choose_near
from solver.splitroutes import figure_vector
from solver.splits import AppSplits, Key
from solver.splitshrunk import link_reads, links_unchanged, shrunk

Link = tuple[str, str]


class _App:
    """One app's tables on the fleet's current shape, and its cached choices."""

    def __init__(self, splits: AppSplits, best: np.ndarray) -> None:
        self.splits = splits
        self.lower = AtBest(*splits.bounds(best))  # every candidate's bound at any figures
        self.host = splits.hosts()
        # Choices (and their keys) by the traced slots they depend on, then by those slots'
        # figures.
        self.cache: dict[tuple[int, ...], dict[tuple[float, ...], tuple[Placement, Key]]] = {}
        self.depends: tuple[int, ...] = ()
        self.watched: tuple[int, ...] = ()  # the slots whose watch lists hold this app
        # Keys scored, by placement and the figures of the traced slots its routes cross:
        # nothing else moves a key (no cost term nor per-app check reads a battery), and
        # the traces loop, so the choice of a moment before is mostly scored already.
        self.keys: dict[tuple[Placement, tuple[float, ...]], Key] = {}
        self._reads: dict[int, tuple[int, ...]] = {}  # host index -> the slots it reads

    def key_of(self, p: Placement, figures: list[float], key: Callable[[Placement], Key]) -> Key:
        """`key(p)` at `figures` (the scorer's at the figures of now), kept in `keys`."""
        i = self.splits.index(p)
        if i is None:
            return key(p)
        j = int(self.host[i])
        slots = self._reads.get(j)
        if slots is None:
            splits = self.splits
            read = splits.source_slots if j < 0 else splits.group_slots[j]
            slots = self._reads[j] = tuple(sorted(read))
        at = (p, tuple([figures[k] for k in slots]))
        hit = self.keys.get(at)
        if hit is None:
            hit = self.keys[at] = key(p)
        return hit

    def slots_under(self, key: tuple[int, float]) -> tuple[int, ...]:
        """The traced slots read by every candidate whose best-figure bound is <= key."""
        slots = set(self.splits.source_slots)
        for j in np.unique(self.host[self.lower.upto(key)]).tolist():
            if j >= 0:
                slots |= self.splits.group_slots[j]
        return tuple(sorted(slots))

    def cached(self, figures: list[float]) -> Placement | None:
        for slots, by_figure in self.cache.items():
            hit = by_figure.get(tuple([figures[j] for j in slots]))
            if hit is not None:
                self.depends = slots
                return hit[0]
        return None

    def carry(self, old: _App, links: Sequence[Link], now: Sequence[Link]) -> int:
        """Take over `old`'s cached choices (made on the last shape, whose traced slots
        were the links `links`; `now`: this shape's) that hold on this shape, as the
        module says. Returns how many were carried."""
        new, was = self.splits, old.splits
        if new.app != was.app or not old.cache:
            return 0
        if new.reads(-1, now) != was.reads(-1, links):
            return 0
        at_new = {d: j for j, d in enumerate(new.others)}
        common = [d for d in was.others if d in at_new]
        if [d for d in new.others if d in common] != common:
            return 0
        at_was = {d: j for j, d in enumerate(was.others)}
        mine, theirs = [at_new[d] for d in common], [at_was[d] for d in common]
        if not new.same_reads(was, mine, theirs, now, links):
            return 0
        gone = frozenset(d for d in was.others if d not in at_new)
        back = np.isin(self.host, [at_new[d] for d in new.others if d not in common])
        # A candidate on a host back could beat or tie a choice whose key is not below
        # the least of their bounds (keys and bounds compare as (violations, value)).
        least = (np.inf, np.inf)
        if back.any():
            lo_b, lo_v = self.lower.broken[back], self.lower.value[back]
            at = np.flatnonzero(lo_b == lo_b.min())
            least = (int(lo_b[at[0]]), float(lo_v[at].min()))
        slots = {key: j for j, key in enumerate(now)}
        carried = 0
        for old_slots, by_figure in old.cache.items():
            keys = [links[j] for j in old_slots]
            if any(k not in slots for k in keys):
                continue
            order = sorted(range(len(keys)), key=lambda i: slots[keys[i]])
            now_slots = tuple(slots[keys[i]] for i in order)
            same_order = order == sorted(order)
            entry = {
                figures if same_order else tuple(figures[i] for i in order): (placement, key)
                for figures, (placement, key) in by_figure.items()
                if key < least and not (gone and not _clear_of(gone, placement))
            }
            if entry:
                self.cache.setdefault(now_slots, {}).update(entry)
                carried += len(entry)
        return carried


class NeurosurgeonPolicy:
    def __init__(self, context: PolicyContext) -> None:
        self.options = solver.SolveOptions(time_limit_s=context.time_limit_s, seed=context.seed)
        self.ceilings: Mapping[Link, float] = context.ceilings
        self.figures: dict[Link, float] = {}
        self.apps: dict[str, _App] = {}
        self.slots: list[Link] = []
        self.watch: dict[int, set[str]] = {}  # slot -> apps whose choice reads it
        self.last: np.ndarray = figure_vector(())
        self.chosen: dict[str, Placement] = {}
        self.caching = True
        self.chose = 0  # apps chosen by the solver's rule (cache misses), for the bench
        self.carried = 0  # cached choices carried across shape changes, for the bench
        self.taken = 0  # layouts taken from the shape before (`shrunk`), for the bench
        self.made = 0  # layouts made afresh, for the bench
        self.devices: frozenset[str] = frozenset()  # the fleet's at the last layout
        self.links_read: dict[Link, tuple[float, float, float | None]] = {}  # `link_reads`

    def decide(self, now: Moment) -> solver.PlanDoc | PlanChange | None:
        self.figures.update(now.link_samples)
        shape = not now.has_plan or bool(now.lost or now.joined)
        if not shape and not (now.changed and now.bandwidth):
            return None
        if shape:
            self._lay_out(now.problem)
        figures = figure_vector([self.figures[k] for k in self.slots])
        if shape or not self.caching:
            todo = set(self.apps)
        else:
            moved = np.flatnonzero(figures[:-1] != self.last[:-1]).tolist()
            todo = set().union(*(self.watch.get(j, ()) for j in moved)) if moved else set()
        self.last = figures
        changed: dict[str, Placement] = {}
        scorer = _Scorer(now)
        listed = figures.tolist()
        for app_id in sorted(todo):
            entry = self.apps[app_id]
            placement = entry.cached(listed) if self.caching else None
            if placement is None:
                score = functools.partial(scorer.key, entry.splits.app)
                if self.caching:  # else a key reads the plan in force too
                    score = functools.partial(entry.key_of, figures=listed, key=score)
                placement, key = choose_near(
                    entry.splits, figures, score, self.chosen.get(app_id), entry.lower
                )
                self.chose += 1
                if self.caching:
                    slots = entry.slots_under(key)
                    by_figure = entry.cache.setdefault(slots, {})
                    by_figure[tuple([listed[j] for j in slots])] = (placement, key)
                    entry.depends = slots
            self._rewatch(app_id, entry)
            if self.chosen.get(app_id) != placement:
                self.chosen[app_id] = placement
                changed[app_id] = placement
        if not shape:
            return PlanChange(changed) if changed else None
        problem = now.problem
        # The costs go to the problem's cache, where the engine's evaluation finds them.
        chosen = dict(self.chosen)
        return solver.build_plan(
            problem.cost, chosen, Status.FEASIBLE, "neurosurgeon", cache=problem.app_costs
        ).doc

    def _rewatch(self, app_id: str, entry: _App) -> None:
        if entry.watched == entry.depends:
            return
        for j in entry.watched:
            self.watch[j].discard(app_id)
        for j in entry.depends:
            self.watch.setdefault(j, set()).add(app_id)
        entry.watched = entry.depends

    def _lay_out(self, problem: solver.Problem) -> None:
        """Tables of the fleet's shape now: which links are traced, each app's splits
        (those of the shape before, less the devices gone, where none of their routes
        crossed one: `solver.splitshrunk`)."""
        links = problem.scenario.links
        at = {(lk.a, lk.b): k for k, lk in enumerate(links)}
        old, old_links = self.apps, self.slots
        self.slots = [key for key in sorted(self.figures) if key in at]
        slots = {at[key]: j for j, key in enumerate(self.slots)}
        best = figure_vector([self.ceilings.get(key, np.inf) for key in self.slots])
        caching = problem.scenario.objective.migration == 0
        devices = frozenset(d.id for d in problem.scenario.devices)
        reads = link_reads(links, self.figures.keys())
        gone = self.devices - devices
        shrinking = devices <= self.devices and links_unchanged(self.links_read, reads)
        now_at = {key: j for j, key in enumerate(self.slots)}
        renumber = np.array([now_at.get(key, -1) for key in old_links], dtype=np.int64)
        self.devices, self.links_read = devices, reads
        # Each app reads the routes from its source to every host and from every host to
        # its sink: one search from each end, not one from each host.
        table = problem.cost.routes
        self.apps = {}
        for a in problem.scenario.apps:
            was = old.get(a.id) if shrinking else None
            splits = None if was is None else shrunk(was.splits, problem, a, gone, renumber)
            if splits is None:
                ends = (table.fan_out(a.source), table.fan_in(a.sink_id))
                splits = AppSplits(problem, a, slots, ends)
                self.made += 1
            else:
                self.taken += 1
            self.apps[a.id] = _App(splits, best)
        if caching and self.caching:
            for app_id, entry in self.apps.items():
                if (was := old.get(app_id)) is not None:
                    self.carried += entry.carry(was, old_links, self.slots)
        self.caching = caching
        self.watch = {}
        self.chosen = {}


class _Scorer:
    """The baseline's scorer on the scenario of now, made when a key is first asked: the
    keys kept (`_App.keys`) spare most steps compiling it (`Moment.priced`)."""

    def __init__(self, now: Moment) -> None:
        self.now = now
        self.scorer: Scorer | None = None

    def key(self, app: App, p: Placement) -> Key:
        if self.scorer is None:
            self.scorer = Scorer(self.now.priced)
        return self.scorer.key(app, p)


def _clear_of(devices: frozenset[str], p: Placement) -> bool:
    """Whether `p` runs on none of `devices` (`p.hosts()`, without making the set)."""
    return devices.isdisjoint(p.blocks or ()) and devices.isdisjoint(p.stages or ())


__all__ = ["NeurosurgeonPolicy"]
