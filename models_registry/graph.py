"""The activation graph of a model and its cut points.

Nodes whose inputs are all constant (initializers, ``Constant``, ``ConstantOfShape``, shape
arithmetic on constants) are *constant nodes*: they produce weights and belong to the
activation nodes that consume them. Everything else is an *activation node*.

A tensor ``t``, output of activation node ``p``, is a cut point when the activation nodes
split into A = ``p`` and everything it depends on, and B = the rest, such that B reads
nothing produced in A (or a graph input) except ``t`` and ``t`` is not also an output of
the model. With dead nodes removed this is exactly "after ``p`` in a topological order,
``t`` is the only live tensor", which holds in every topological order, so one
``O(nodes + edges)`` sweep finds all cut points, already in chain order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import networkx as nx
import onnx

from models_registry.errors import ModelError
from models_registry.loading import TensorInfo, real_inputs, static_info, tensor_types

#: Nondeterministic generators are never folded into constants.
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
     "Bernoulli"}
)  # fmt: skip


def _subgraph_refs(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from its enclosing scope."""
    defined = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(node_inputs(node))
        defined.update(node.output)
    return {name for name in used if name and name not in defined}


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs (non-empty) plus names its subgraphs read from the outer scope."""
    names = [name for name in node.input if name]
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            names.extend(sorted(_subgraph_refs(attr.g)))
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for sub in attr.graphs:
                names.extend(sorted(_subgraph_refs(sub)))
    return names


@dataclass(frozen=True)
class CutPoint:
    """A cut after the activation node at ``position`` of the activation order."""

    position: int
    tensor: str


@dataclass
class ModelGraph:
    """A loaded model seen as a DAG of activation nodes over constant weights."""

    model: onnx.ModelProto
    infos: dict[str, TensorInfo | None]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    constants: set[str]
    producer: dict[str, int]
    #: indices (into model.graph.node) of live activation nodes, topologically ordered
    order: list[int]
    #: every live activation node's constant (weight) inputs, by node index
    weights: dict[int, list[str]] = field(default_factory=dict)
    #: every node's position in one topological order of all nodes
    rank: dict[int, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return list(self.model.graph.node)

    def info(self, name: str) -> TensorInfo | None:
        return self.infos.get(name)

    def constant_closure(self, tensors: set[str]) -> tuple[set[int], set[str]]:
        """The constant nodes and initializers that produce `tensors`."""
        node_ids: set[int] = set()
        inits: set[str] = set()
        init_names = {init.name for init in self.model.graph.initializer}
        stack = list(tensors)
        seen: set[str] = set()
        graph_nodes = self.model.graph.node
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in init_names:
                inits.add(name)
                continue
            index = self.producer.get(name)
            if index is not None and index not in node_ids:
                node_ids.add(index)
                stack.extend(node_inputs(graph_nodes[index]))
        return node_ids, inits


def build_graph(model: onnx.ModelProto) -> ModelGraph:
    """Classify the nodes of a loaded (shape-inferred) model and order them."""
    graph = model.graph
    types = tensor_types(model)
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            if name:
                producer[name] = index
    dag: nx.DiGraph = nx.DiGraph()
    dag.add_nodes_from(range(len(nodes)))
    for index, node in enumerate(nodes):
        for name in node_inputs(node):
            if name in producer:
                dag.add_edge(producer[name], index)
    try:
        topo = list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        raise ModelError("the model's graph has a cycle") from None

    constants = {init.name for init in graph.initializer}
    activation: list[int] = []
    for index in topo:
        node = nodes[index]
        ins = node_inputs(node)
        if node.op_type not in RANDOM_OPS and all(name in constants for name in ins):
            constants.update(name for name in node.output if name)
        else:
            activation.append(index)

    inputs = [
        _required_info(value.name, types.get(value.name), "input") for value in real_inputs(model)
    ]
    outputs = [
        _required_info(value.name, types.get(value.name), "output") for value in graph.output
    ]
    input_names = {info.name for info in inputs}

    # Keep only activation nodes some output depends on.
    needed = {value.name for value in graph.output}
    live: set[int] = set()
    for index in reversed(activation):
        if any(name in needed for name in nodes[index].output):
            live.add(index)
            needed.update(node_inputs(nodes[index]))
    order = [index for index in activation if index in live]

    for name in needed:
        if name and name not in producer and name not in constants and name not in input_names:
            raise ModelError(f"tensor {name!r} is used but nothing produces it")

    infos: dict[str, TensorInfo | None] = {name: static_info(name, t) for name, t in types.items()}
    weights = {
        index: [name for name in node_inputs(nodes[index]) if name in constants] for index in order
    }
    rank = {index: position for position, index in enumerate(topo)}
    return ModelGraph(model, infos, inputs, outputs, constants, producer, order, weights, rank)


def _required_info(name: str, type_proto: onnx.TypeProto | None, what: str) -> TensorInfo:
    info = static_info(name, type_proto)
    if info is None:
        raise ModelError(
            f"the shape of {what} {name!r} could not be inferred; "
            "give static input shapes with --input-shape"
        )
    return info


def find_cut_points(mg: ModelGraph) -> list[CutPoint]:
    """All cut points, in chain order (see the module docstring)."""
    nodes = mg.model.graph.node
    uses: Counter[str] = Counter()
    for index in mg.order:
        for name in node_inputs(nodes[index]):
            if name not in mg.constants:
                uses[name] += 1
    output_names = {info.name for info in mg.outputs}
    live: set[str] = {info.name for info in mg.inputs if uses[info.name] > 0}
    cuts: list[CutPoint] = []
    for position, index in enumerate(mg.order):
        node = nodes[index]
        for name in node_inputs(node):
            if name in mg.constants:
                continue
            uses[name] -= 1
            if uses[name] == 0 and name not in output_names:
                live.discard(name)
        produced = [name for name in node.output if name and (uses[name] > 0)]
        live.update(produced)
        live.update(name for name in node.output if name in output_names)
        if len(live) == 1 and position < len(mg.order) - 1:
            (tensor,) = live
            if tensor in produced and tensor not in output_names:
                cuts.append(CutPoint(position, tensor))
    return cuts
