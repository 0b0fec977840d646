"""The layer names of Kang et al.'s Neurosurgeon paper (Caffe's) for the registry's blocks of
the AlexNet and VGG-19 graphs the `onnx` wheel ships, which number their tensors instead.
Shared by `tests/solver/test_neurosurgeon.py` and `bench/neurosurgeon.py`."""

from __future__ import annotations

from models_registry import ModelAnalysis

_SUFFIX = {"Relu": "relu", "LRN": "norm", "Dropout": "drop"}


def caffe_names(analysis: ModelAnalysis, staged: bool) -> list[str]:
    """The paper's (Caffe's) layer names for the blocks: conv1, relu1, norm1, pool1, ...,
    fc8, prob; VGG's per stage (conv1_1, relu1_1, conv1_2, ..., pool1). The onnx graphs
    number their tensors instead."""
    names: list[str] = []
    conv = fc = 0
    stage, within = 1, 0
    tag = ""
    for block in analysis.blocks:
        kind = next(iter(block.op_counts))
        if kind == "Conv":
            conv, within = conv + 1, within + 1
            tag = f"{stage}_{within}" if staged else str(conv)
            names.append(f"conv{tag}")
        elif kind == "Gemm":
            fc = fc + 1 if fc else (stage if staged else conv + 1)
            tag = str(fc)
            names.append(f"fc{tag}")
        elif kind == "MaxPool":
            names.append(f"pool{stage if staged else conv}")
            stage, within = stage + 1, 0
        elif kind == "Reshape":
            names.append("flatten")
        elif kind == "Softmax":
            names.append("prob")
        else:
            names.append(f"{_SUFFIX[kind]}{tag}")
    return names
