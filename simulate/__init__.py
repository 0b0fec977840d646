"""What-if simulation over time: policies replayed on traces, scored by the evaluator.

Pure apart from reading its inputs (scenario, traces) and writing its outputs when asked
(`simulate.run.write_outputs`). Imports the solver and the control plane's re-placement
path (`orchestrator.replacement`, `orchestrator.triggers`, `orchestrator.hysteresis`),
never the API or the database. docs/simulate.md is the user's guide.
"""

from __future__ import annotations

from simulate.engine import PolicyRun, Simulation, Totals
from simulate.errors import InputError
from simulate.inputs import Inputs, load_scenario_dict, prepare
from simulate.policy import Moment, PlanChange, Policy, PolicyContext
from simulate.registry import GROUP, known, make
from simulate.traces import Trace, read_trace

__all__ = [
    "GROUP",
    "InputError",
    "Inputs",
    "Moment",
    "PlanChange",
    "Policy",
    "PolicyContext",
    "PolicyRun",
    "Simulation",
    "Totals",
    "Trace",
    "known",
    "load_scenario_dict",
    "make",
    "prepare",
    "read_trace",
]
