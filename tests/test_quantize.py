"""8-bit quantization of exported models: smaller files whose predictions follow the float model."""

import json

import numpy as np
import onnx
import pytest

from classifier.emotion import EmotionModel, softmax
from classifier.preprocess import FACE_SIZE
from tests.conftest import ROOT
from tests.test_ensemble import write_linear_member
from tests.test_training import run_training_cli, write_csv
from training import ensemble, quantize


@pytest.fixture
def faces():
    return np.random.default_rng(4).integers(0, 256, (200, FACE_SIZE, FACE_SIZE)).astype(np.uint8)


def test_quantize_keeps_predictions(tmp_path, faces):
    float_path = write_linear_member(tmp_path / "float.onnx", seed=1)
    int8_path = tmp_path / "int8.onnx"

    agreement = quantize.quantize(float_path, int8_path, faces[:64])

    assert agreement >= quantize.MIN_AGREEMENT
    assert int8_path.stat().st_size < 0.4 * float_path.stat().st_size
    weight_types = {initializer.data_type for initializer in onnx.load(str(int8_path)).graph.initializer}
    assert onnx.TensorProto.INT8 in weight_types
    float_logits = EmotionModel(float_path, flip_average=False).logits(faces[64:])
    int8_logits = EmotionModel(int8_path, flip_average=False).logits(faces[64:])
    np.testing.assert_allclose(int8_logits, float_logits, atol=0.25)  # logits span about -5 to 5


def test_quantize_rejects_no_faces(tmp_path):
    float_path = write_linear_member(tmp_path / "float.onnx", seed=1)

    with pytest.raises(quantize.QuantizationError, match="no faces"):
        quantize.quantize(float_path, tmp_path / "int8.onnx", np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8))


def test_calibration_faces_sample_without_repeats():
    images = np.arange(2000).reshape(2000, 1, 1)  # each face differs from every other

    chosen = quantize.calibration_faces(images)

    assert len(chosen) == quantize.CALIBRATION_FACES
    assert len({face.tobytes() for face in chosen}) == quantize.CALIBRATION_FACES
    assert len(quantize.calibration_faces(images[:10])) == 10


def test_ensemble_cli_writes_int8_model(tmp_path):
    members = [write_linear_member(tmp_path / f"member{seed}.onnx", seed) for seed in range(2)]
    csv_path = write_csv(tmp_path / "fer.csv")
    out = tmp_path / "out" / "emotion.onnx"

    result = run_training_cli("ensemble", "--members", *members, "--data", csv_path, "--out", out,
                              "--int8", "--cache", tmp_path / "cache", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Quantized" in result.stderr
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["weights"] == "int8"
    assert settings["temperature"] > 0
    assert out.stat().st_size < sum(member.stat().st_size for member in members)
    # The averaging nodes stay in float: at 8 bits, small probabilities would round to 0 and
    # their log to -inf.
    faces = np.random.default_rng(5).integers(0, 256, (50, FACE_SIZE, FACE_SIZE)).astype(np.uint8)
    float_ensemble = ensemble.write(members, tmp_path / "float-ensemble.onnx")
    int8_logits = EmotionModel(out, flip_average=False).logits(faces)
    float_logits = EmotionModel(float_ensemble, flip_average=False).logits(faces)
    assert np.isfinite(int8_logits).all()
    np.testing.assert_allclose(softmax(int8_logits), softmax(float_logits), atol=0.05)


def test_warm_start_rejects_two_nets_of_one_architecture(tmp_path):
    from training import warm_start

    float_model = ROOT / "models" / "emotion-float.onnx"
    both = tmp_path / "both.onnx"
    onnx.save(ensemble.combine([float_model, float_model]), str(both))

    with pytest.raises(ValueError, match="contains 2 vgg32 nets, where one is expected"):
        warm_start.onnx_weights(both, "vgg32")
