"""The scenario-v1 document: validated, with the contract's defaults applied.

`../shared/contracts/scenario-v1.md` is normative. Every rule the contract calls an error
is checked here, so that nothing downstream ever sees an inconsistent scenario.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from solver.gcpause import paused_gc

Tier = Literal["device", "edge", "cloud"]
TIERS: tuple[Tier, ...] = ("device", "edge", "cloud")
ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ScenarioError(ValueError):
    """A scenario that breaks the contract; the message names the field or id."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Power(_Strict):
    idle: float = Field(ge=0)
    busy: float = Field(ge=0)

    @model_validator(mode="after")
    def _busy_at_least_idle(self) -> Power:
        if self.busy < self.idle:
            raise ValueError(f"busy ({self.busy}) must be >= idle ({self.idle})")
        return self


class Battery(_Strict):
    capacity_wh: float = Field(gt=0)
    level_pct: float = Field(ge=0, le=100)
    min_pct: float = Field(ge=0, le=100)

    @property
    def usable_wh(self) -> float:
        return (self.level_pct - self.min_pct) / 100.0 * self.capacity_wh


class Device(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    tier: Tier
    gflops: float = Field(gt=0)
    memory_mb: float = Field(gt=0)
    power_w: Power
    battery: Battery | None = None
    grid_gco2_per_kwh: float = Field(default=0.0, ge=0)
    embodied_kgco2e: float = Field(default=0.0, ge=0)
    lifetime_h: float = Field(default=35040.0, gt=0)
    overhead_ms: float = Field(default=0.0, ge=0)


class Link(_Strict):
    a: str
    b: str
    mbps: float = Field(gt=0)
    rtt_ms: float = Field(ge=0)
    j_per_mb: float = Field(default=0.0, ge=0)


class Layer(_Strict):
    name: str = Field(min_length=1)
    gflops: float = Field(ge=0)
    params_mb: float = Field(ge=0)
    out_mb: float = Field(ge=0)


class Exit(_Strict):
    after: str
    prob: float = Field(ge=0, le=1)
    gflops: float = Field(default=0.0, ge=0)
    params_mb: float = Field(default=0.0, ge=0)


class Model(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    input_mb: float = Field(ge=0)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    layers: tuple[Layer, ...] = Field(min_length=1)
    exits: tuple[Exit, ...] = ()

    @model_validator(mode="after")
    def _exits_follow_known_blocks(self) -> Model:
        names = [layer.name for layer in self.layers]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"duplicate layer name {name!r}")
            seen.add(name)
        used: set[str] = set()
        for k, ex in enumerate(self.exits):
            if ex.after not in seen:
                raise ValueError(f"exits[{k}].after: unknown block {ex.after!r}")
            if ex.after == names[-1]:
                raise ValueError(f"exits[{k}].after: {ex.after!r} is the last block")
            if ex.after in used:
                raise ValueError(f"exits[{k}].after: a second exit after {ex.after!r}")
            used.add(ex.after)
        return self

    @property
    def params_mb(self) -> float:
        return sum(layer.params_mb for layer in self.layers)


class CascadeStage(_Strict):
    model: str
    exit_prob: float | None = Field(default=None, ge=0, le=1)


class App(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    model: str | None = None
    variants: tuple[str, ...] | None = Field(default=None, min_length=1)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    cascade: tuple[CascadeStage, ...] | None = Field(default=None, min_length=1)
    source: str
    sink: str | None = None
    rate_rps: float = Field(gt=0)
    slo_ms: float | None = Field(default=None, gt=0)
    allowed_tiers: tuple[Tier, ...] = TIERS
    max_stages: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> App:
        kinds = [k for k in ("model", "variants", "cascade") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "exactly one of model, variants, cascade is required"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.min_accuracy is not None and self.variants is None:
            raise ValueError("min_accuracy: only used with variants")
        if self.cascade is not None:
            for k, stage in enumerate(self.cascade[:-1]):
                if stage.exit_prob is None:
                    raise ValueError(
                        f"cascade[{k}].exit_prob: required for every stage but the last"
                    )
        if not self.allowed_tiers:
            raise ValueError("allowed_tiers: must name at least one tier")
        return self

    @property
    def sink_id(self) -> str:
        return self.sink if self.sink is not None else self.source

    @property
    def kind(self) -> Literal["model", "variants", "cascade"]:
        if self.cascade is not None:
            return "cascade"
        return "variants" if self.variants is not None else "model"


class Objective(_Strict):
    energy: float = Field(default=1.0, ge=0)
    carbon: float = Field(default=0.0, ge=0)
    latency: float = Field(default=0.0, ge=0)
    migration: float = Field(default=0.0, ge=0)


class PreviousSegment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    first: str
    last: str
    device: str


class PreviousStage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    device: str


class PreviousApp(BaseModel):
    # A previous plan is a plan document: its metric fields are allowed and ignored.
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    model: str | None = None
    segments: tuple[PreviousSegment, ...] | None = None
    stages: tuple[PreviousStage, ...] | None = None


class PreviousPlan(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    apps: tuple[PreviousApp, ...] = ()


class Scenario(_Strict):
    version: Literal[1]
    horizon_h: float = Field(default=8.0, gt=0)
    max_utilization: float = Field(default=0.8, gt=0)
    objective: Objective = Objective()
    devices: tuple[Device, ...] = Field(min_length=1)
    links: tuple[Link, ...] = ()
    models: tuple[Model, ...] = ()
    apps: tuple[App, ...] = ()
    previous: PreviousPlan | None = None

    @field_validator("devices", "models", "apps")
    @classmethod
    def _unique_ids(cls, items: tuple[Any, ...]) -> tuple[Any, ...]:
        seen: set[str] = set()
        for k, item in enumerate(items):
            if item.id in seen:
                raise ValueError(f"[{k}].id: duplicate id {item.id!r}")
            seen.add(item.id)
        return items

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        devices = {d.id for d in self.devices}
        models = {m.id: m for m in self.models}
        pairs: set[frozenset[str]] = set()
        for k, link in enumerate(self.links):
            for end in ("a", "b"):
                if getattr(link, end) not in devices:
                    raise ValueError(f"links[{k}].{end}: unknown device {getattr(link, end)!r}")
            if link.a == link.b:
                raise ValueError(f"links[{k}]: a link from {link.a!r} to itself")
            pair = frozenset((link.a, link.b))
            if pair in pairs:
                raise ValueError(f"links[{k}]: a second link between {link.a!r} and {link.b!r}")
            pairs.add(pair)
        for k, app in enumerate(self.apps):
            where = f"apps[{k}] ({app.id})"
            for end in ("source", "sink"):
                ref = getattr(app, end)
                if ref is not None and ref not in devices:
                    raise ValueError(f"{where}.{end}: unknown device {ref!r}")
            if app.model is not None and app.model not in models:
                raise ValueError(f"{where}.model: unknown model {app.model!r}")
            for j, name in enumerate(app.variants or ()):
                if name not in models:
                    raise ValueError(f"{where}.variants[{j}]: unknown model {name!r}")
            if app.variants is not None and len(set(app.variants)) != len(app.variants):
                raise ValueError(f"{where}.variants: a model is named twice")
            for j, stage in enumerate(app.cascade or ()):
                if stage.model not in models:
                    raise ValueError(f"{where}.cascade[{j}].model: unknown model {stage.model!r}")
        return self

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def model(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)


def _describe_location(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """`('devices', 3, 'gflops')` -> `devices[3] (cam-4).gflops`, ids help people find the line."""
    parts: list[str] = []
    node: Any = raw
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            if isinstance(node, list) and 0 <= step < len(node):
                node = node[step]
                if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                    label += f" ({node['id']})"
            else:
                node = None
            parts.append(label)
        else:
            if step in {"function-after[_busy_at_least_idle()]", "model-after"}:
                continue
            node = node.get(step) if isinstance(node, Mapping) else None
            parts.append(("." if parts else "") + str(step))
    return "".join(parts)


def _first_error(raw: Mapping[str, Any], exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(
        s for s in err["loc"] if not (isinstance(s, str) and ("[" in s or s.startswith("function")))
    )
    where = _describe_location(raw, loc)
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "literal_error" and loc == ("version",):
        msg = f"unsupported version {err.get('input')!r}; this is scenario version 1"
    if msg.startswith("[") and where:
        return f"{where}{msg}"  # "apps" + "[6].id: duplicate id" reads as one path
    return f"{where}: {msg}" if where else msg


def parse_scenario(raw: Any) -> Scenario:
    """Validate a decoded scenario document, raising ScenarioError with one line."""
    if not isinstance(raw, Mapping):
        raise ScenarioError("a scenario must be a mapping with version, devices, links, ...")
    try:
        # Tens of thousands of models and their dicts, no cycle among them: a collection
        # in the middle would rescan them all, half the parse of a 10,000-device fleet.
        with paused_gc():
            return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_first_error(raw, exc)) from None


# libyaml's parser where PyYAML was built with it: the pure-Python one reads a scenario
# of 10,000 devices in tens of seconds.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _decode(text: str) -> Any:
    """A scenario file's document: JSON (a subset of YAML) by the json module, which
    is much faster than any YAML parser on the large generated fleets; else YAML."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML in flow style, or broken: the YAML parser says which
    return yaml.load(text, Loader=_YAML_LOADER)


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: cannot read ({exc})") from None
    try:
        with paused_gc():  # as in parse_scenario: a document of a million small objects
            raw = _decode(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{p}: not valid YAML or JSON{where}") from None
    return parse_scenario(raw)
