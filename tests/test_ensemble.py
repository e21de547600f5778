"""Ensembles of exported models: one ONNX file whose output matches its members averaged."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from classifier.emotion import EmotionModel, softmax
from classifier.preprocess import FACE_SIZE
from tests.test_training import run_training_cli, write_csv
from training import ensemble

PIXELS = FACE_SIZE * FACE_SIZE


def write_linear_member(path, seed, opset=17, extra_opsets=()):
    """Write a linear classifier over raw pixels, laid out like an exported member model."""
    rng = np.random.default_rng(seed)
    weights = (rng.normal(size=(PIXELS, 7)) / PIXELS).astype(np.float32)
    bias = rng.normal(size=7).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], ["product"]),
         helper.make_node("Add", ["product", "bias"], ["output"])],
        "member",
        inputs=[helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", FACE_SIZE, FACE_SIZE, 1])],
        outputs=[helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", 7])],
        initializer=[numpy_helper.from_array(np.array([-1, PIXELS], np.int64), "shape"),
                     numpy_helper.from_array(weights, "weights"),
                     numpy_helper.from_array(bias, "bias")],
    )
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(*extra) for extra in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def members(tmp_path):
    return [write_linear_member(tmp_path / f"member{seed}.onnx", seed) for seed in range(3)]


@pytest.fixture
def faces():
    return np.random.default_rng(9).integers(0, 256, (5, FACE_SIZE, FACE_SIZE)).astype(np.uint8)


def member_logits(members, faces):
    return [EmotionModel(path, flip_average=False).logits(faces) for path in members]


def test_ensemble_averages_probabilities(tmp_path, members, faces):
    combined = ensemble.write(members, tmp_path / "combined.onnx", average="probabilities")

    logits = EmotionModel(combined, flip_average=False).logits(faces)

    expected = np.mean([softmax(member) for member in member_logits(members, faces)], axis=0)
    np.testing.assert_allclose(softmax(logits), expected, atol=1e-5)


def test_ensemble_averages_logits(tmp_path, members, faces):
    combined = ensemble.write(members, tmp_path / "combined.onnx", average="logits")

    logits = EmotionModel(combined, flip_average=False).logits(faces)

    np.testing.assert_allclose(logits, np.mean(member_logits(members, faces), axis=0), atol=1e-4)


def test_ensemble_rejects_one_member(members):
    with pytest.raises(ensemble.EnsembleError, match="at least two"):
        ensemble.combine(members[:1])


def test_ensemble_rejects_mixed_opsets(tmp_path, members):
    other = write_linear_member(tmp_path / "other.onnx", seed=5, opset=13)

    with pytest.raises(ensemble.EnsembleError, match="different ONNX opsets"):
        ensemble.combine([members[0], other])


def test_ensemble_keeps_member_opset_domains(tmp_path):
    # Keras exports import the ai.onnx.ml domain as well as the default one.
    members = [write_linear_member(tmp_path / f"member{seed}.onnx", seed, extra_opsets=[("ai.onnx.ml", 2)])
               for seed in range(2)]

    combined = ensemble.combine(members)

    opsets = {opset.domain: opset.version for opset in combined.opset_import}
    assert opsets == {"": 17, "ai.onnx.ml": 2}


def test_ensemble_cli_may_replace_a_member(tmp_path, members):
    csv_path = write_csv(tmp_path / "fer.csv")
    out = members[0]

    result = run_training_cli("ensemble", "--members", *members, "--data", csv_path, "--out", out,
                              "--no-flip", "--cache", tmp_path / "cache", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["temperature"] > 0
    assert settings["average"] == "probabilities"
    assert settings["flip_average"] is False
    assert len(settings["source"]) == 3
    assert len(onnx.load(str(out)).graph.node) > 3 * 3  # three members' nodes plus the averaging


def test_ensemble_cli_reports_missing_member(tmp_path, members):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("ensemble", "--members", members[0], tmp_path / "absent.onnx",
                              "--data", csv_path, cwd=tmp_path)

    assert result.returncode == 2
    assert "member model not found" in result.stderr
    assert "Traceback" not in result.stderr
