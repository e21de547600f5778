"""Export a trained Keras model to the ONNX file the classifier loads, with its settings file.

ONNX Runtime is what the classifier runs: on 2 CPU cores it classifies a single face about
2.5x faster than a compiled TensorFlow function and a batch as fast, and it lets the bot
run without TensorFlow installed, which keeps its container image small.
"""

import json
import logging
import pathlib

import numpy as np

from classifier.emotion import EmotionModel
from classifier.labels import EMOTIONS
from classifier.preprocess import FACE_SIZE
from training.data import DataError

log = logging.getLogger(__name__)

# Maximum logit difference accepted between a written ONNX model and what it was made from.
MAX_LOGIT_DIFFERENCE = 1e-3


def export(keras_path, onnx_path, temperature=1.0, flip_average=True, shift_pixels=0, extra=None):
    """Write `onnx_path` and its `.json` settings; check that ONNX and Keras outputs agree."""
    import keras  # here, not at the top, so ensemble.py can use this module without TensorFlow

    keras_path, onnx_path = pathlib.Path(keras_path), pathlib.Path(onnx_path)
    try:
        model = keras.models.load_model(keras_path)
    except (OSError, ValueError) as error:
        raise DataError(f"{keras_path}: not readable as a .keras model ({str(error).splitlines()[0]})") from None
    probe = probe_faces()
    expected = keras.ops.convert_to_numpy(model(probe[..., None].astype(np.float32), training=False))

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(onnx_path), format="onnx", verbose=False)
    write_settings(onnx_path, temperature, flip_average, shift_pixels, extra)

    difference = check_logits(onnx_path, probe, expected, source=f"the Keras model {keras_path}")
    log.info("Exported %s to %s (max logit difference %.1g)", keras_path, onnx_path, difference)
    return onnx_path


def probe_faces():
    """Return four random (48, 48) uint8 faces, the same on every call, for checking a written model."""
    return np.random.default_rng(0).integers(0, 256, (4, FACE_SIZE, FACE_SIZE)).astype(np.uint8)


def check_logits(onnx_path, probe, expected, source):
    """Run `onnx_path` on `probe` without test-time views; raise unless it matches `expected`.

    Returns the maximum absolute logit difference.
    """
    difference = logit_difference(onnx_path, probe, expected)
    if difference > MAX_LOGIT_DIFFERENCE:
        raise RuntimeError(f"{onnx_path}: logits differ from {source} by {difference:.2g}, "
                           f"over the {MAX_LOGIT_DIFFERENCE:g} allowed, so the written model is wrong")
    return difference


def logit_difference(onnx_path, faces, expected):
    """Return the maximum absolute difference between `expected` and the logits of `onnx_path`.

    `faces` are (N, 48, 48) uint8, and the model runs without test-time views.
    """
    logits = EmotionModel(onnx_path, flip_average=False, shift_pixels=0).logits(faces)
    return float(np.abs(logits - expected).max())


def write_settings(onnx_path, temperature, flip_average, shift_pixels, extra=None):
    """Write the `.json` file beside `onnx_path` that `classifier.EmotionModel` reads."""
    settings = {"classes": list(EMOTIONS), "input": f"(N, {FACE_SIZE}, {FACE_SIZE}, 1) float32, 0-255",
                "temperature": float(temperature), "flip_average": bool(flip_average),
                "shift_pixels": int(shift_pixels), **(extra or {})}
    pathlib.Path(onnx_path).with_suffix(".json").write_text(json.dumps(settings, indent=2) + "\n")
