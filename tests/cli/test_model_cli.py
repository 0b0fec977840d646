"""`continuum model ...` end to end on a randomized SqueezeNet 1.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from cli.model import model_app
from models_registry import randomize

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "squeezenet.onnx"
    result = runner.invoke(
        model_app, ["randomize", str(LIGHT / "light_squeezenet.onnx"), "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == randomize(LIGHT / "light_squeezenet.onnx").SerializeToString()
    return path


def assert_user_error(args: list[str], message: str) -> None:
    result = runner.invoke(model_app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert result.stdout == ""


def test_inspect_json(model_file: Path) -> None:
    result = runner.invoke(model_app, ["inspect", str(model_file), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"input_mb", "inputs", "outputs", "blocks", "total_gflops", "params_mb"} <= set(doc)
    assert doc["inputs"] == [{"name": "data_0", "shape": [1, 3, 224, 224], "dtype": "float32"}]
    assert doc["input_mb"] == pytest.approx(0.602112)
    assert len(doc["blocks"]) == 18
    assert doc["total_gflops"] == pytest.approx(sum(b["gflops"] for b in doc["blocks"]), rel=1e-4)


def test_inspect_table_and_scenario_entry(model_file: Path) -> None:
    result = runner.invoke(model_app, ["inspect", str(model_file)])
    assert result.exit_code == 0 and "r9" in result.stdout and "GFLOP" in result.stdout
    result = runner.invoke(
        model_app, ["inspect", str(model_file), "--scenario-id", "sq", "--accuracy", "0.58"]
    )
    entry = json.loads(result.stdout)
    assert entry["id"] == "sq" and entry["accuracy"] == 0.58 and len(entry["layers"]) == 18


def test_split_verify_and_difference(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "parts"
    result = runner.invoke(
        model_app, ["split", str(model_file), "--after", "r17,r39", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(p["first"], p["last"]) for p in manifest["parts"]] == [
        ("r2", "r17"),
        ("r19", "r39"),
        ("r41", "softmaxout_1"),
    ]
    result = runner.invoke(model_app, ["verify", str(model_file), str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["max_rel"] <= 1e-5
    other = tmp_path / "other.onnx"
    runner.invoke(
        model_app,
        ["randomize", str(LIGHT / "light_squeezenet.onnx"), "--out", str(other), "--seed", "5"],
    )
    result = runner.invoke(model_app, ["verify", str(other), str(out)])
    assert result.exit_code == 1 and "DIFFER" in result.stdout


def test_user_errors_write_nothing(model_file: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.onnx"
    notes.write_text("not a model")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_file.read_bytes()[:200_000])
    out = tmp_path / "out"
    assert_user_error(["inspect", str(notes)], "not an ONNX model")
    assert_user_error(["split", str(truncated), "--after", "r9", "--out", str(out)], "")
    assert_user_error(
        ["split", str(model_file), "--after", "r10", "--out", str(out)], "'r10' is not a cut point"
    )
    assert_user_error(["quantize", str(notes), "--out", str(tmp_path / "q.onnx")], "not an ONNX")
    assert_user_error(["inspect", str(model_file), "--input-shape", "x"], "NAME=1,3,224,224")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.onnx", "truncated.onnx"]


def test_dynamic_input_needs_input_shape(model_file: Path, tmp_path: Path) -> None:
    model = onnx.load(model_file)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, dynamic)
    assert_user_error(
        ["inspect", str(dynamic)], "input 'data_0' has dynamic dimensions [N,3,224,224]"
    )
    result = runner.invoke(
        model_app, ["inspect", str(dynamic), "--input-shape", "data_0=1,3,224,224", "--json"]
    )
    assert result.exit_code == 0 and len(json.loads(result.stdout)["blocks"]) == 18


def test_exits_calibrate_and_cascade(model_file: Path, tmp_path: Path) -> None:
    head = tmp_path / "head.onnx"
    result = runner.invoke(
        model_app,
        ["exit-head", str(model_file), "--after", "r9", "--out", str(head), "--classes", "5"],
    )
    assert result.exit_code == 0, result.output
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32))
    result = runner.invoke(
        model_app,
        ["calibrate", str(model_file), "--exit", f"r9={head}", "--data", str(data),
         "--threshold", "0", "--id", "sq"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    assert entry["id"] == "sq" and "accuracy" not in entry
    (exit_entry,) = entry["exits"]
    assert exit_entry["after"] == "r9" and exit_entry["prob"] == 1.0
    assert exit_entry["params_mb"] == pytest.approx((5 * 128 + 5) * 4 / 1e6)
    stated = runner.invoke(
        model_app, ["calibrate", str(model_file), "--exit", f"r9={head}", "--prob", "r9=0.3"]
    )
    assert json.loads(stated.stdout)["exits"][0]["prob"] == 0.3
    assert_user_error(
        ["calibrate", str(model_file), "--exit", f"r17={head}", "--prob", "r17=0.3"],
        "block 'r17' outputs [1,128,27,27] float32",
    )
    result = runner.invoke(
        model_app,
        ["cascade", str(model_file), str(model_file), "--data", str(data), "--threshold", "1",
         "--small-id", "sq", "--big-id", "sq2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cascade"] == [{"model": "sq", "exit_prob": 0.0}, {"model": "sq2"}]
    assert [m["id"] for m in doc["models"]] == ["sq", "sq2"]


def test_quantize_and_profile(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    result = runner.invoke(
        model_app, ["quantize", str(model_file), "--out", str(out), "--runs", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert out.stat().st_size == pytest.approx(record["int8_mb"] * 1e6)
    assert record["int8_mb"] < record["fp32_mb"]
    result = runner.invoke(
        model_app, ["profile", str(model_file), "--runs", "2", "--warmup", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["blocks"]) == 18 and all(b["median_ms"] > 0 for b in doc["blocks"])
    assert -1 <= doc["pearson_r"] <= 1
    assert doc["block_ms"] == {b["name"]: b["median_ms"] for b in doc["blocks"]}


def test_static_quantization_with_calibration_data(model_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32))
    out = tmp_path / "static.onnx"
    result = runner.invoke(
        model_app,
        ["quantize", str(model_file), "--out", str(out), "--data", str(data), "--runs", "2",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "static"
    assert record["int8_latency_ms"] > 0 and record["fp32_latency_ms"] > 0
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # activations too (QDQ)
    assert_user_error(
        ["quantize", str(model_file), "--out", str(tmp_path / "x.onnx"), "--data",
         str(tmp_path / "missing.npy")],
        "no such calibration file",
    )  # fmt: skip


def test_accuracy_measured_on_labelled_data(model_file: Path, tmp_path: Path) -> None:
    from models_registry import analyse_model
    from models_registry.runtime import make_session

    rng = np.random.default_rng(2)
    samples = rng.standard_normal((6, 3, 224, 224)).astype(np.float32)
    data, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(data, samples)
    analysis = analyse_model(model_file)
    session = make_session(analysis.model, 1)
    predicted = [
        int(np.argmax(session.run(None, {analysis.inputs[0].name: s[None]})[0])) for s in samples
    ]
    # Four labels right, two wrong: 4/6.
    truth = np.array(predicted[:4] + [(p + 1) % 1000 for p in predicted[4:]], dtype=np.int64)
    np.save(labels, truth)
    result = runner.invoke(
        model_app,
        ["calibrate", str(model_file), "--data", str(data), "--labels", str(labels), "--id", "sq"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == round(4 / 6, 6)
    np.save(labels, truth[:5])
    assert_user_error(
        ["calibrate", str(model_file), "--data", str(data), "--labels", str(labels)],
        "5 labels for 6 samples",
    )
    assert_user_error(["calibrate", str(model_file), "--labels", str(labels)], "give --data")
    assert_user_error(["calibrate", str(model_file)], "nothing to calibrate")
