"""Evaluate an emotion model on one FER2013 split through the classifier's own inference path.

A `.keras` model is first exported to a temporary ONNX file, so every figure comes from
`classifier.EmotionModel`: the same preprocessing, flip averaging and temperature as the bot.
"""

import json
import pathlib
import tempfile

import numpy as np

from classifier.emotion import DEFAULT_MODEL, EmotionModel, softmax
from classifier.labels import EMOTIONS
from training import data, metrics

DISGUST = EMOTIONS.index("disgust")


def load_model(model_path, flip_average=None, shift_pixels=None, temperature=None, scratch_dir=None):
    """Load an `.onnx` model (with its settings) or export a `.keras` one to ONNX first."""
    model_path = pathlib.Path(model_path or DEFAULT_MODEL)
    if model_path.suffix == ".keras":
        from training.export import export

        onnx_path = pathlib.Path(scratch_dir or tempfile.mkdtemp()) / "model.onnx"
        export(model_path, onnx_path, temperature=temperature or 1.0,
               flip_average=True if flip_average is None else flip_average, shift_pixels=shift_pixels or 0)
        model_path = onnx_path
    model = EmotionModel(model_path, flip_average=flip_average, shift_pixels=shift_pixels)
    if temperature is not None:
        model.temperature = temperature
    return model


def evaluate(model, faces, fer_plus_majority_labels=None):
    """Return the metrics of `model` on `faces` as a JSON-ready dict, and the confusion matrix."""
    logits = model.logits(faces.images)
    probabilities = softmax(logits / model.temperature)  # what model.predict returns, without a second pass
    predictions = probabilities.argmax(axis=1)
    matrix = metrics.confusion_matrix(faces.labels, predictions, len(EMOTIONS))
    recall = metrics.per_class_recall(matrix)
    result = {
        "model": str(model.path),
        "n": int(len(faces)),
        "accuracy": round(float((predictions == faces.labels).mean()), 4),
        "macro_f1": round(metrics.macro_f1(matrix), 4),
        "per_class_recall": {name: round(float(r), 4) for name, r in zip(EMOTIONS, recall)},
        "accuracy_without_disgust": round(metrics.accuracy_without_class(faces.labels, probabilities, DISGUST), 4),
        "expected_calibration_error": round(metrics.expected_calibration_error(faces.labels, probabilities), 4),
        "temperature": model.temperature,
        "flip_average": model.flip_average,
        "shift_pixels": model.shift_pixels,
    }
    if fer_plus_majority_labels is not None:
        result.update(fer_plus_majority(fer_plus_majority_labels, predictions))
    return result, matrix, logits


def fer_plus_majority(majority, predictions):
    """Return the accuracy against the FER+ majority vote, on the rows whose majority is one of our classes.

    `majority` is `data.load_fer_plus_majority` for these rows: a class index, or -1 to leave the row out.
    """
    scored = majority >= 0
    # None, not NaN, when no row is scored: NaN is not valid JSON.
    accuracy = round(float((predictions[scored] == majority[scored]).mean()), 4) if scored.any() else None
    return {"fer_plus_majority_accuracy": accuracy, "fer_plus_n": int(scored.sum())}


def save_confusion_matrix(matrix, path, title):
    """Write the confusion matrix as a PNG: row-normalised colours, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    figure, axes = plt.subplots(figsize=(7, 6), dpi=120)
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(len(EMOTIONS)):
        for column in range(len(EMOTIONS)):
            color = "white" if normalised[row, column] > 0.5 else "black"
            axes.text(column, row, f"{matrix[row, column]}\n{normalised[row, column]:.0%}",
                      ha="center", va="center", fontsize=8, color=color)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
