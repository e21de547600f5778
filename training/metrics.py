"""Classification metrics on plain arrays: labels (N,) ints and probabilities (N, C)."""

import numpy as np


def confusion_matrix(labels, predictions, classes):
    """Return a (C, C) count matrix: rows are true classes, columns predicted classes."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_recall(matrix):
    totals = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), totals, out=np.zeros(len(matrix)), where=totals > 0)


def macro_f1(matrix):
    """Unweighted mean of per-class F1; a class never predicted nor present scores 0."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    denominator = predicted + actual
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(len(matrix)), where=denominator > 0)
    return float(f1.mean())


def accuracy_without_class(labels, probabilities, excluded):
    """Accuracy with the `excluded` class's rows left out and its output ignored when picking."""
    keep = labels != excluded
    masked = probabilities[keep].copy()
    masked[:, excluded] = -np.inf
    return float((masked.argmax(axis=1) == labels[keep]).mean())


def expected_calibration_error(labels, probabilities, bins=15):
    """Expected calibration error of the top-class confidence, over equal-width bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def negative_log_likelihood(labels, logits, temperature):
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_probabilities = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_temperature(labels, logits):
    """Return the softmax temperature that minimises the negative log-likelihood of `labels`."""
    candidates = np.exp(np.linspace(np.log(0.25), np.log(8.0), 400))
    losses = [negative_log_likelihood(labels, logits, t) for t in candidates]
    return float(candidates[int(np.argmin(losses))])
