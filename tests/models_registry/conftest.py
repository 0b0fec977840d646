"""Shared fixtures: the nine architectures of the onnx wheel, randomized once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from models_registry import randomize

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = (
    "bvlc_alexnet",
    "vgg19",
    "resnet50",
    "squeezenet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "shufflenet",
    "zfnet512",
)


def light_path(name: str) -> Path:
    return LIGHT_DIR / f"light_{name}.onnx"


@pytest.fixture(scope="session")
def randomized() -> Callable[[str], onnx.ModelProto]:
    """``randomized(name)``: the light model with random weights (seed 0), made once."""
    cache: dict[str, onnx.ModelProto] = {}

    def get(name: str) -> onnx.ModelProto:
        if name not in cache:
            cache[name] = randomize(light_path(name), seed=0)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def squeezenet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomized SqueezeNet 1.1 on disk."""
    path = tmp_path_factory.mktemp("models") / "squeezenet.onnx"
    path.write_bytes(randomize(light_path("squeezenet"), seed=0).SerializeToString())
    return path
