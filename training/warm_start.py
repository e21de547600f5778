"""Start training from the weights in an exported ONNX model, such as the shipped one.

The repository ships ONNX files, not Keras checkpoints, so a run that should go on from the
shipped model's float export `models/emotion-float.onnx` (or fine-tune it on other faces) has to rebuild a Keras model from the
ONNX file. The export folded each convolution's batch normalisation into the kernel and a bias,
so the batch-norm scale is gone. `rebuild` recovers an equivalent model: for every batch-norm
layer it measures the mean and variance of the layer's input on sample faces and picks the
statistics and scale that reproduce the exported outputs exactly in inference mode. In
training mode the layer then normalises batches to about the spread the original one did.
"""

import logging
import re

import keras
import numpy as np

from classifier import preprocess
from training.average import batch_norm_input_statistics
from training.export import MAX_LOGIT_DIFFERENCE, logit_difference

log = logging.getLogger(__name__)

# tf2onnx names each weight after the Keras layer it came from, such as
# "vgg32_1/block1_conv1_1/convolution/merged_input:0" for the layer "block1_conv1".
_WEIGHT_NAME = re.compile(r"^[^/]+/(?P<layer>[^/]+?)_\d+/(?P<role>.+):0$")


def onnx_weights(onnx_path):
    """Return {(layer name, role): array} for the weights of an ONNX file written by our export.

    Raises ValueError for a quantized model.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    if any(node.op_type == "DequantizeLinear" for node in graph.node):
        raise ValueError(f"{onnx_path} is an 8-bit quantized model, whose weights no longer match any "
                         f"Keras model exactly: start from the float model it was quantized from, "
                         f"such as models/emotion-float.onnx")
    weights = {}
    for initializer in graph.initializer:
        match = _WEIGHT_NAME.match(initializer.name)
        if match:
            weights[match["layer"], match["role"]] = numpy_helper.to_array(initializer)
    return weights


def rebuild(model, onnx_path, faces):
    """Load the weights of `onnx_path` into `model`, a freshly built net of the same architecture.

    `faces` are (N, 48, 48) uint8 faces (a few thousand Training faces) used to measure each
    batch-norm layer's input. Raises ValueError when the ONNX file does not contain this
    architecture or the rebuilt model does not reproduce its logits.
    """
    weights = onnx_weights(onnx_path)
    inputs = preprocess.to_model_input(faces)

    def weight(layer, role):
        try:
            return weights[layer, role]
        except KeyError:
            raise ValueError(f"{onnx_path} has no {role} weight for layer {layer!r}: "
                             f"it was not exported from a {model.name} model") from None

    def set_weights(layer, arrays):
        expected = [tuple(variable.shape) for variable in layer.weights]
        if [array.shape for array in arrays] != expected:
            raise ValueError(f"{onnx_path}: layer {layer.name!r} has weights of shapes "
                             f"{[array.shape for array in arrays]}, where a {model.name} model has {expected}: "
                             f"it was not exported from a {model.name} model")
        layer.set_weights(arrays)

    # Kernels first, so that each layer's input can be measured once the layers before it are set.
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            # ONNX keeps kernels as (out, in, height, width); Keras as (height, width, in, out).
            kernel = weight(layer.name, "convolution/merged_input").transpose(2, 3, 1, 0)
            set_weights(layer, [kernel])
        elif isinstance(layer, keras.layers.Dense):
            kernel = weight(layer.name, "Cast/ReadVariableOp")
            bias = [weight(layer.name, "BiasAdd/ReadVariableOp")] if layer.use_bias else []
            set_weights(layer, [kernel, *bias])

    for layer, (mean, variance) in batch_norm_input_statistics(model, inputs):
        # The export computes scale * x + shift, where scale is 1 for folded convolutions.
        scale = weights.get((layer.name, "batchnorm/mul"), np.ones_like(mean))
        shift = weight(layer.name, "batchnorm/sub")
        # BatchNormalization computes gamma * (x - mean) / sqrt(variance + epsilon) + beta.
        gamma = scale * np.sqrt(variance + layer.epsilon)
        beta = shift + scale * mean
        layer.set_weights([gamma, beta, mean, variance])

    expected = keras.ops.convert_to_numpy(model(inputs[:256], training=False))
    difference = logit_difference(onnx_path, faces[:256], expected)
    if difference > MAX_LOGIT_DIFFERENCE:
        raise ValueError(f"the model rebuilt from {onnx_path} differs from it by {difference:.2g} "
                         f"in logits, over the {MAX_LOGIT_DIFFERENCE:g} allowed")
    log.info("Rebuilt %s from %s (max logit difference %.1g)", model.name, onnx_path, difference)
    return model
