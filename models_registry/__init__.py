"""The model registry: ONNX analysis, cut points, partitions, variants, exits, profiling.

The public surface is listed in ``__all__``; everything else is internal.
"""

from models_registry.accuracy import load_labels, top1_accuracy
from models_registry.blocks import Block, ModelAnalysis, analyse, analyse_model
from models_registry.errors import ModelError
from models_registry.exits import (
    ExitCalibration,
    ExitHead,
    attach_exit,
    calibrate_cascade,
    calibrate_exits,
    confidence,
    load_samples,
    make_exit_head,
)
from models_registry.flops import RULES as FLOP_RULES
from models_registry.flops import NodeCost, node_cost
from models_registry.graph import CutPoint, ModelGraph, build_graph, find_cut_points
from models_registry.loading import TensorInfo, load_model, parse_input_shapes, read_model
from models_registry.partition import (
    Partition,
    StoredPart,
    extract_partition,
    read_partitions,
    split_model,
    write_partitions,
)
from models_registry.profiling import (
    BlockTiming,
    Comparison,
    compare,
    median_latency_ms,
    profile_blocks,
)
from models_registry.quantize import QuantizedVariant, quantize_int8
from models_registry.randomize import randomize
from models_registry.store import ArtifactStore, CorruptArtifactError
from models_registry.verify import VerifyReport, run_chain, verify_chain

__all__ = [
    "FLOP_RULES",
    "ArtifactStore",
    "Block",
    "BlockTiming",
    "Comparison",
    "CorruptArtifactError",
    "CutPoint",
    "ExitCalibration",
    "ExitHead",
    "ModelAnalysis",
    "ModelError",
    "ModelGraph",
    "NodeCost",
    "Partition",
    "QuantizedVariant",
    "StoredPart",
    "TensorInfo",
    "VerifyReport",
    "analyse",
    "analyse_model",
    "attach_exit",
    "build_graph",
    "calibrate_cascade",
    "calibrate_exits",
    "compare",
    "confidence",
    "extract_partition",
    "find_cut_points",
    "load_labels",
    "load_model",
    "load_samples",
    "make_exit_head",
    "median_latency_ms",
    "node_cost",
    "parse_input_shapes",
    "profile_blocks",
    "quantize_int8",
    "randomize",
    "read_model",
    "read_partitions",
    "run_chain",
    "split_model",
    "top1_accuracy",
    "verify_chain",
    "write_partitions",
]
