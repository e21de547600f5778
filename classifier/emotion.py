"""Predict the emotion of cropped faces with the shipped ONNX model.

The model file `<name>.onnx` maps (N, 48, 48, 1) float32 faces (values 0-255) to logits over
the seven FER2013 classes. A JSON file beside it (`<name>.json`) stores what inference needs
to match the evaluated figures: the softmax temperature fitted on PublicTest and whether
predictions average the face with its mirror image.
"""

import json
import pathlib

import numpy as np
import onnxruntime

from classifier import preprocess
from classifier.labels import EMOTIONS

DEFAULT_MODEL = pathlib.Path(__file__).resolve().parent.parent / "models" / "emotion.onnx"


class EmotionModel:
    """An emotion classifier for batches of 48x48 grayscale faces."""

    def __init__(self, path=DEFAULT_MODEL, threads=None, flip_average=None):
        path = pathlib.Path(path)
        if not path.exists():
            raise FileNotFoundError(f"emotion model not found: {path}")
        settings_path = path.with_suffix(".json")
        settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
        self.path = path
        self.temperature = float(settings.get("temperature", 1.0))
        self.flip_average = settings.get("flip_average", True) if flip_average is None else flip_average

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name

    def logits(self, faces):
        """Return (N, 7) logits for (N, 48, 48) uint8 faces, averaged with the mirrored faces if set."""
        batch = preprocess.to_model_input(faces)
        if len(batch) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if not self.flip_average:
            return self._run(batch)
        both = self._run(np.concatenate([batch, batch[:, :, ::-1]]))
        return (both[:len(batch)] + both[len(batch):]) / 2

    def predict(self, faces):
        """Return (N, 7) calibrated probabilities, in FER2013 class order, for (N, 48, 48) uint8 faces."""
        return softmax(self.logits(faces) / self.temperature)

    def _run(self, batch):
        return self._session.run(None, {self._input_name: np.ascontiguousarray(batch)})[0]


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)
