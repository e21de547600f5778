"""Average the weights of several epochs of one run, and measure batch-norm statistics again.

Training leaves each batch-norm layer with running statistics of augmented faces passed
through active dropout, which differ from its input at inference. Measuring them
again on plain Training faces raised the second training cycle's best epoch from 0.669 to 0.683
PublicTest accuracy (without flip averaging).
Averaging the weights of late epochs of a cycle (stochastic weight averaging) needs the same
step, since averaged kernels no longer match any epoch's statistics.
"""

import logging
import pathlib

import keras
import numpy as np

from classifier import preprocess
from training import data
from training.models import ARCHITECTURES

log = logging.getLogger(__name__)

# Training faces on which batch-norm inputs are measured. Two different samples of this size gave
# the same PublicTest accuracy, and it stays quick although it runs once per batch-norm layer.
MEASURED_FACES = 4096


def sample_images(images, seed):
    """Return up to MEASURED_FACES of `images` (N, 48, 48), picked at random with `seed`, in order."""
    return data.sample_images(images, MEASURED_FACES, seed)


def save_weights(model, path):
    """Write the weights of `model` (without optimizer state, unlike `.weights.h5`) to an `.npz` file."""
    np.savez(path, *model.get_weights())


def load_weights(model, path):
    """Load an `.npz` file from `save_weights`, a `.weights.h5` file or a `.keras` model into `model`.

    Return the arrays. Raise ValueError when the file cannot be read or contains another architecture.
    """
    path = pathlib.Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path) as saved:
                model.set_weights([saved[f"arr_{index}"] for index in range(len(saved.files))])
        elif path.name.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            model.set_weights(keras.models.load_model(path).get_weights())
    except (OSError, ValueError, KeyError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: not readable as {model.name} weights ({reason})") from None
    return model.get_weights()


def average(paths, architecture, faces):
    """Build an `architecture` model with the mean of the weights in `paths`, then measure its batch norms.

    A path may also be an ONNX file from our export or ensemble: its `architecture` net is
    rebuilt as float (see `warm_start.rebuild`), even from 8-bit weights.

    `faces` are (N, 48, 48) uint8 Training faces (a few thousand) on which each batch-norm
    layer's input is measured after averaging.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"invalid architecture {architecture!r}: choose one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[architecture]()
    sums = None
    for path in paths:
        if pathlib.Path(path).suffix.lower() == ".onnx":
            from training import warm_start  # here: warm_start uses this module

            arrays = warm_start.rebuild(model, path, faces).get_weights()
        else:
            arrays = load_weights(model, path)
        sums = arrays if sums is None else [total + array for total, array in zip(sums, arrays)]
    model.set_weights([total / len(paths) for total in sums])

    inputs = preprocess.to_model_input(faces)
    measured = 0
    for layer, (mean, variance) in batch_norm_input_statistics(model, inputs):
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, mean, variance])
        measured += 1
    log.info("Averaged %d weight file(s) into one %s and measured %d batch-norm layer(s) on %d faces",
             len(paths), model.name, measured, len(faces))
    return model


def batch_norm_input_statistics(model, inputs):
    """For each batch-norm layer in order, yield it with the mean and variance of its input.

    Each layer's statistics are measured with the layers before it already updated by the caller,
    so update a layer before asking for the next one.
    """
    for index, layer in enumerate(model.layers):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        before = keras.Model(model.inputs, model.layers[index - 1].output)
        values = keras.ops.convert_to_numpy(before.predict(inputs, batch_size=256, verbose=0))
        axes = tuple(range(values.ndim - 1))
        yield layer, (values.mean(axis=axes), values.var(axis=axes))
