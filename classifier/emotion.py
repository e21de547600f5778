"""Predict the emotion of cropped faces with the shipped ONNX model.

The model file `<name>.onnx` maps (N, 48, 48, 1) float32 faces (values 0-255) to logits over
the seven FER2013 classes. A JSON file beside it (`<name>.json`) stores what inference needs
to match the evaluated figures: the softmax temperature fitted on PublicTest, and the
test-time augmentation (mirror image, small shifts) whose logits are averaged.
"""

import json
import pathlib

import numpy as np
import onnxruntime

from classifier import preprocess
from classifier.labels import EMOTIONS

class ModelError(Exception):
    """An emotion model file that is missing or cannot be loaded."""


MAX_FACES_PER_RUN = 64

DEFAULT_MODEL = pathlib.Path(__file__).resolve().parent.parent / "models" / "emotion.onnx"


class EmotionModel:
    """An emotion classifier for batches of 48x48 grayscale faces."""

    def __init__(self, path=DEFAULT_MODEL, threads=None, flip_average=None, shift_pixels=None):
        path = pathlib.Path(path)
        if not path.is_file():
            hint = ""
            if path == DEFAULT_MODEL:
                # `pip install .` copies the packages into site-packages but not the repository's models/ folder.
                hint = ("; the shipped model is in the repository's models/ folder, which a non-editable install "
                        "does not copy: install with `pip install -e .`, or set MODEL_PATH to that folder's "
                        "emotion.onnx (an empty MODEL_PATH counts as not set)")
            raise ModelError(f"emotion model not found: {path}{hint}")
        settings_path = path.with_suffix(".json")
        try:
            settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
        except (OSError, json.JSONDecodeError) as error:
            raise ModelError(f"cannot read the model settings {settings_path}: {error}") from None
        self.path = path
        self.temperature = float(settings.get("temperature", 1.0))
        self.flip_average = settings.get("flip_average", True) if flip_average is None else flip_average
        # Also average over copies shifted this many pixels up, down, left and right (0: none).
        self.shift_pixels = int(settings.get("shift_pixels", 0) if shift_pixels is None else shift_pixels)

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own exception types, not exported
            raise ModelError(f"cannot load the emotion model {path}: {error}") from None
        self._input_name = self._session.get_inputs()[0].name

    def logits(self, faces):
        """Return (N, 7) logits for (N, 48, 48) uint8 faces, averaged over the test-time views."""
        batch = preprocess.to_model_input(faces)
        if len(batch) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        # Chunks bound memory: the first layer's activations take 300 KB per face and view.
        chunks = []
        for start in range(0, len(batch), MAX_FACES_PER_RUN):
            chunk = batch[start:start + MAX_FACES_PER_RUN]
            views = self._views(chunk)
            logits = self._run(np.concatenate(views))
            chunks.append(logits.reshape(len(views), len(chunk), -1).mean(axis=0))
        return np.concatenate(chunks)

    def _views(self, batch):
        views = [batch]
        step = self.shift_pixels
        if step:
            padded = np.pad(batch, ((0, 0), (step, step), (step, step), (0, 0)), mode="edge")
            size = batch.shape[1]
            for dy, dx in ((0, step), (2 * step, step), (step, 0), (step, 2 * step)):
                views.append(padded[:, dy:dy + size, dx:dx + size])
        if self.flip_average:
            views += [view[:, :, ::-1] for view in views]
        return views

    def predict(self, faces):
        """Return (N, 7) calibrated probabilities, in FER2013 class order, for (N, 48, 48) uint8 faces."""
        return softmax(self.logits(faces) / self.temperature)

    def _run(self, batch):
        return self._session.run(None, {self._input_name: np.ascontiguousarray(batch)})[0]


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)
