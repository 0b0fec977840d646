"""Blocks: the chain a model collapses into between consecutive cut points.

With the default ``granularity="layer"``, a stretch between two cut points that does no
multiply-accumulates (a lone BatchNormalization, Relu, pooling, Reshape, Softmax...) is
merged into the block before it (or, at the start, the block after it), so every block
holds at least one convolution or matrix product. ``granularity="fine"`` keeps every cut
point. A block is named after the tensor it produces (the last block: the model's first
output), which is what ``split --after`` takes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import onnx

from models_registry.errors import ModelError
from models_registry.flops import NodeCost, node_cost
from models_registry.graph import CutPoint, ModelGraph, build_graph, find_cut_points
from models_registry.loading import ModelSource, TensorInfo, load_model

Granularity = Literal["layer", "fine"]

MB = 1_000_000


def _sig(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class Block:
    """Consecutive activation nodes between two cut points."""

    name: str
    index: int
    #: positions into ``ModelGraph.order`` (first, last), inclusive
    first_position: int
    last_position: int
    macs: int
    flops: int
    params_bytes: int
    outputs: tuple[TensorInfo, ...]
    op_counts: Mapping[str, int]

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def params_mb(self) -> float:
        return self.params_bytes / MB

    @property
    def out_bytes(self) -> int:
        return sum(info.nbytes for info in self.outputs)

    @property
    def out_mb(self) -> float:
        return self.out_bytes / MB

    def to_layer(self) -> dict[str, Any]:
        """The scenario-v1 layer entry."""
        return {
            "name": self.name,
            "gflops": _sig(self.gflops),
            "params_mb": _sig(self.params_mb),
            "out_mb": _sig(self.out_mb),
        }


@dataclass
class ModelAnalysis:
    """A model's blocks and totals. ``graph.model`` is the prepared model."""

    graph: ModelGraph
    blocks: list[Block]
    cut_points: list[CutPoint]
    costs: dict[int, NodeCost] = field(repr=False)
    params_bytes: int = 0
    uncounted_ops: dict[str, int] = field(default_factory=dict)

    @property
    def model(self) -> onnx.ModelProto:
        return self.graph.model

    @property
    def inputs(self) -> list[TensorInfo]:
        return self.graph.inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self.graph.outputs

    @property
    def input_mb(self) -> float:
        return sum(info.nbytes for info in self.inputs) / MB

    @property
    def total_flops(self) -> int:
        return sum(block.flops for block in self.blocks)

    @property
    def total_macs(self) -> int:
        return sum(block.macs for block in self.blocks)

    @property
    def total_gflops(self) -> float:
        return self.total_flops / 1e9

    @property
    def params_mb(self) -> float:
        return self.params_bytes / MB

    @property
    def block_names(self) -> list[str]:
        return [block.name for block in self.blocks]

    def block_index(self, name: str) -> int:
        for block in self.blocks:
            if block.name == name:
                return block.index
        shown = ", ".join(self.block_names[:-1])
        raise ModelError(
            f"{name!r} is not a cut point of this model; blocks that can be cut after: "
            f"{shown or '(none: the model is a single block)'}"
        )

    def block(self, name: str) -> Block:
        return self.blocks[self.block_index(name)]

    def node_indices(self, first: int, last: int) -> list[int]:
        """Indices into the graph's nodes of the activation nodes of blocks first..last."""
        start = self.blocks[first].first_position
        stop = self.blocks[last].last_position
        return self.graph.order[start : stop + 1]

    def to_json(self) -> dict[str, Any]:
        """The ``continuum model inspect --json`` document."""
        return {
            "input_mb": _sig(self.input_mb),
            "inputs": [info.to_dict() for info in self.inputs],
            "outputs": [info.to_dict() for info in self.outputs],
            "blocks": [block.to_layer() for block in self.blocks],
            "total_gflops": _sig(self.total_gflops),
            "total_gmacs": _sig(self.total_macs / 1e9),
            "params_mb": _sig(self.params_mb),
            "uncounted_ops": dict(sorted(self.uncounted_ops.items())),
        }

    def to_scenario_model(
        self,
        model_id: str,
        *,
        accuracy: float | None = None,
        exits: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A scenario-v1 ``models`` entry. ``accuracy`` is never invented: it is omitted
        unless given."""
        entry: dict[str, Any] = {
            "id": model_id,
            "input_mb": _sig(self.input_mb),
            "layers": [block.to_layer() for block in self.blocks],
        }
        if accuracy is not None:
            if not 0.0 <= accuracy <= 1.0:
                raise ModelError(f"accuracy {accuracy} is outside 0..1")
            entry["accuracy"] = accuracy
        if exits:
            names = set(self.block_names[:-1])
            for item in exits:
                if item.get("after") not in names:
                    raise ModelError(
                        f"exit after {item.get('after')!r}: not a block before the last one"
                    )
            entry["exits"] = [dict(item) for item in exits]
        return entry


def _segments(n_nodes: int, cuts: Sequence[CutPoint]) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = 0
    for cut in cuts:
        bounds.append((start, cut.position))
        start = cut.position + 1
    bounds.append((start, n_nodes - 1))
    return bounds


def _kept_cuts(
    cuts: Sequence[CutPoint], heavy: Sequence[bool], granularity: Granularity
) -> list[CutPoint]:
    if granularity == "fine" or not any(heavy):
        return list(cuts)
    kept: list[CutPoint] = []
    acc_heavy = False
    for i, cut in enumerate(cuts):
        acc_heavy = acc_heavy or heavy[i]
        if acc_heavy and heavy[i + 1]:
            kept.append(cut)
            acc_heavy = False
    return kept


def analyse(mg: ModelGraph, granularity: Granularity = "layer") -> ModelAnalysis:
    """Cost every node and collapse the graph into blocks."""
    nodes = mg.model.graph.node
    costs: dict[int, NodeCost] = {}
    uncounted: Counter[str] = Counter()
    for index in mg.order:
        node = nodes[index]
        ins = [mg.info(name) if name else None for name in node.input]
        outs = [mg.info(name) if name else None for name in node.output]
        cost = node_cost(node, ins, outs)
        costs[index] = cost
        if not cost.counted:
            uncounted[node.op_type] += 1

    fine = find_cut_points(mg)
    segments = _segments(len(mg.order), fine)
    heavy = [
        any(costs[mg.order[p]].macs > 0 for p in range(first, last + 1)) for first, last in segments
    ]
    cuts = _kept_cuts(fine, heavy, granularity)

    weight_bytes: dict[str, int] = {}
    for names in mg.weights.values():
        for name in names:
            info = mg.info(name)
            weight_bytes[name] = info.nbytes if info is not None else 0

    blocks: list[Block] = []
    for i, (first, last) in enumerate(_segments(len(mg.order), cuts)):
        ids = mg.order[first : last + 1]
        weights = {name for index in ids for name in mg.weights[index]}
        if i < len(cuts):
            out_info = mg.info(cuts[i].tensor)
            if out_info is None:
                raise ModelError(f"the shape of tensor {cuts[i].tensor!r} could not be inferred")
            outputs: tuple[TensorInfo, ...] = (out_info,)
        else:
            outputs = tuple(mg.outputs)
        blocks.append(
            Block(
                name=outputs[0].name,
                index=i,
                first_position=first,
                last_position=last,
                macs=sum(costs[index].macs for index in ids),
                flops=sum(costs[index].flops for index in ids),
                params_bytes=sum(weight_bytes[name] for name in weights),
                outputs=outputs,
                op_counts=dict(Counter(nodes[index].op_type for index in ids)),
            )
        )
    return ModelAnalysis(
        graph=mg,
        blocks=blocks,
        cut_points=cuts,
        costs=costs,
        params_bytes=sum(weight_bytes.values()),
        uncounted_ops=dict(uncounted),
    )


def analyse_model(
    source: ModelSource,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    granularity: Granularity = "layer",
) -> ModelAnalysis:
    """Load (bytes, path or proto), check and analyse a model in one call."""
    return analyse(build_graph(load_model(source, input_shapes)), granularity)
