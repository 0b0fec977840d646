"""Partitions: standalone ONNX models for consecutive ranges of blocks.

A partition carries only the nodes and initializers its blocks need. Its inputs and
outputs keep the original tensor names, so partitions chain by name: part k's output is
part k+1's input.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from models_registry.blocks import ModelAnalysis
from models_registry.errors import ModelError
from models_registry.graph import node_inputs
from models_registry.loading import TensorInfo

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Partition:
    """Blocks ``first``..``last`` (names) of a model, as their own ONNX model."""

    first: str
    last: str
    first_index: int
    last_index: int
    model: onnx.ModelProto
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()


def _value_info(info: TensorInfo) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(info.dtype))
    return helper.make_tensor_value_info(info.name, elem, list(info.shape))


def extract_partition(analysis: ModelAnalysis, first: int, last: int) -> Partition:
    """The partition of blocks ``first``..``last`` (indices, inclusive)."""
    blocks = analysis.blocks
    if not 0 <= first <= last < len(blocks):
        raise ModelError(f"block range {first}..{last} is outside 0..{len(blocks) - 1}")
    mg = analysis.graph
    source = mg.model
    nodes = source.graph.node
    act_ids = analysis.node_indices(first, last)
    produced = {name for index in act_ids for name in nodes[index].output if name}
    needed_inputs: list[str] = []
    const_inputs: set[str] = set()
    for index in act_ids:
        for name in node_inputs(nodes[index]):
            if name in mg.constants:
                const_inputs.add(name)
            elif name not in produced and name not in needed_inputs:
                needed_inputs.append(name)
    const_ids, init_names = mg.constant_closure(const_inputs)

    graph_input_order = [info.name for info in mg.inputs]
    ordered = [n for n in graph_input_order if n in needed_inputs]
    ordered += [n for n in needed_inputs if n not in graph_input_order]
    inputs: list[TensorInfo] = []
    for name in ordered:
        info = mg.info(name)
        if info is None:
            raise ModelError(f"the shape of tensor {name!r} could not be inferred")
        inputs.append(info)
    outputs = blocks[last].outputs

    all_ids = sorted([*act_ids, *const_ids], key=lambda index: mg.rank[index])
    keep_names = produced | {name for index in const_ids for name in nodes[index].output}
    value_info = [
        value
        for value in source.graph.value_info
        if value.name in keep_names and value.name not in {o.name for o in outputs}
    ]
    graph = helper.make_graph(
        [nodes[index] for index in all_ids],
        f"{source.graph.name or 'model'}[{blocks[first].name}..{blocks[last].name}]",
        [_value_info(info) for info in inputs],
        [_value_info(info) for info in outputs],
        initializer=[init for init in source.graph.initializer if init.name in init_names],
        value_info=value_info,
    )
    model = helper.make_model(
        graph,
        opset_imports=list(source.opset_import),
        producer_name="continuum",
        ir_version=source.ir_version,
    )
    model.functions.extend(source.functions)
    return Partition(
        first=blocks[first].name,
        last=blocks[last].name,
        first_index=first,
        last_index=last,
        model=model,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )


def split_model(analysis: ModelAnalysis, after: Sequence[str]) -> list[Partition]:
    """Partitions for cuts after the named blocks (any order; duplicates are errors)."""
    if not after:
        raise ModelError("give at least one block to cut after")
    indices = [analysis.block_index(name) for name in after]
    last = len(analysis.blocks) - 1
    for name, index in zip(after, indices, strict=True):
        if index == last:
            raise ModelError(f"{name!r} is the last block; there is nothing after it to cut")
    if len(set(indices)) != len(indices):
        raise ModelError("the same block is named twice in --after")
    bounds = sorted(indices)
    parts: list[Partition] = []
    start = 0
    for end in [*bounds, last]:
        parts.append(extract_partition(analysis, start, end))
        start = end + 1
    return parts


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_partitions(parts: Sequence[Partition], out_dir: str | Path) -> dict[str, Any]:
    """Write ``part0.onnx``... and ``manifest.json`` into ``out_dir``, atomically.

    ``out_dir`` must not exist or be empty; on any failure nothing is left behind.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} already exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest: dict[str, Any] = {"parts": []}
        for k, part in enumerate(parts):
            data = part.to_bytes()
            file_name = f"part{k}.onnx"
            (tmp / file_name).write_bytes(data)
            manifest["parts"].append(
                {
                    "file": file_name,
                    "first": part.first,
                    "last": part.last,
                    "inputs": [info.to_dict() for info in part.inputs],
                    "outputs": [info.to_dict() for info in part.outputs],
                    "sha256": sha256_bytes(data),
                }
            )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


@dataclass(frozen=True)
class StoredPart:
    """A partition read back from a split directory."""

    file: Path
    first: str
    last: str
    data: bytes
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


def _infos(entries: Any, where: str) -> tuple[TensorInfo, ...]:
    try:
        return tuple(
            TensorInfo(str(e["name"]), tuple(int(d) for d in e["shape"]), str(e["dtype"]))
            for e in entries
        )
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{where}: inputs/outputs must be lists of name, shape, dtype") from None


def read_partitions(directory: str | Path) -> list[StoredPart]:
    """Read ``manifest.json`` and every part it lists, checking each part's sha256."""
    root = Path(directory)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{root}: no {MANIFEST} (make one with `continuum model split`)")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["parts"]
        if not isinstance(entries, list) or not entries:
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise ModelError(f"{manifest_path}: not a split manifest (no list of parts)") from None
    parts: list[StoredPart] = []
    for k, entry in enumerate(entries):
        where = f"{manifest_path} part {k}"
        if not isinstance(entry, dict) or not {"file", "sha256"} <= entry.keys():
            raise ModelError(f"{where}: needs file and sha256")
        path = root / str(entry["file"])
        if path.resolve().parent != root.resolve() or not path.is_file():
            raise ModelError(f"{where}: file {entry['file']!r} is missing from {root}")
        data = path.read_bytes()
        if sha256_bytes(data) != entry["sha256"]:
            raise ModelError(f"{path}: sha256 does not match the manifest (file changed?)")
        parts.append(
            StoredPart(
                file=path,
                first=str(entry.get("first", "")),
                last=str(entry.get("last", "")),
                data=data,
                inputs=_infos(entry.get("inputs", []), where),
                outputs=_infos(entry.get("outputs", []), where),
            )
        )
    return parts
