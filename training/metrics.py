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


def fit_temperature(labels, logits, lowest=0.25, highest=8.0):
    """Return the softmax temperature in [lowest, highest] that minimises the negative log-likelihood of `labels`.

    The loss is convex in 1 / temperature, so it has a single minimum over log(temperature), which a
    golden-section search brackets to a relative width of 1e-6.
    """
    def loss(log_temperature):
        return negative_log_likelihood(labels, logits, np.exp(log_temperature))

    inverse_golden_ratio = (np.sqrt(5.0) - 1.0) / 2.0  # 0.618: the share of the bracket each step keeps
    low, high = np.log(lowest), np.log(highest)
    left, right = high - inverse_golden_ratio * (high - low), low + inverse_golden_ratio * (high - low)
    left_loss, right_loss = loss(left), loss(right)
    while high - low > 1e-6:
        if left_loss <= right_loss:
            high, right, right_loss = right, left, left_loss
            left = high - inverse_golden_ratio * (high - low)
            left_loss = loss(left)
        else:
            low, left, left_loss = left, right, right_loss
            right = low + inverse_golden_ratio * (high - low)
            right_loss = loss(right)
    return float(np.exp((low + high) / 2.0))
