"""Start training from the weights in an exported ONNX model, such as the shipped one.

The repository ships ONNX files, not Keras checkpoints, so a run that should go on from a shipped
net (or fine-tune it on other faces) has to rebuild a Keras model from an ONNX file: the float
export `models/emotion-float.onnx`, or one member of the 8-bit ensemble `models/emotion.onnx`,
whose weights are turned back into float. The export folded each convolution's batch
normalisation into the kernel and a bias, so the batch-norm scale is gone. `rebuild` recovers an
equivalent model: for every batch-norm layer it measures the mean and variance of the layer's
input on sample faces and picks the statistics and scale that reproduce the exported outputs in
inference mode (exactly from float weights; from 8-bit ones, up to the 8-bit activations). In
training mode the layer then normalises batches to about the spread the original one did.
"""

import dataclasses
import logging
import re

import keras
import numpy as np

from classifier import preprocess
from classifier.emotion import EmotionModel
from training.average import batch_norm_input_statistics
from training.export import MAX_LOGIT_DIFFERENCE

log = logging.getLogger(__name__)

# tf2onnx names each weight after the Keras layer it came from, such as
# "vgg32_1/block1_conv1_1/convolution/merged_input:0" for the layer "block1_conv1" of the net
# "vgg32". `python -m training ensemble` prefixes each member's names: "member1_vgg48_1/...".
_WEIGHT_NAME = re.compile(r"^(?P<net>[^/]+)/(?P<layer>[^/]+?)_\d+/(?P<role>.+):0$")
_NET_NAME = re.compile(r"^(?P<member>member\d+_)?(?P<architecture>.+)_\d+$")
# ONNX Runtime's quantization names the float output of a weight's DequantizeLinear node like this.
_DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"
# Share of sample faces on which a net rebuilt from 8-bit weights must pick the class the 8-bit
# net picks. The shipped members, rebuilt, agreed on 96.9-99.2% of 256 Training faces. The margin
# below that allows for small face sets, because weights in the wrong layers would agree on few.
MIN_QUANTIZED_AGREEMENT = 0.8


@dataclasses.dataclass
class OnnxNet:
    """The weights of one net in an ONNX file: the whole export, or one member of an ensemble."""

    weights: dict  # {(layer name, role): array}
    member: str | None  # the ensemble member's name prefix, such as "member1_"; None for a single net
    quantized: bool


def onnx_weights(onnx_path, architecture):
    """Return the `OnnxNet` of the `architecture` net in an ONNX file written by our export or ensemble.

    8-bit weights are converted back to float. Raises ValueError when the file contains no such
    net or more than one.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as error:  # protobuf raises its own DecodeError for a damaged file
        raise ValueError(f"{onnx_path}: not readable as an ONNX model ({type(error).__name__})") from None
    arrays = {initializer.name: numpy_helper.to_array(initializer) for initializer in graph.initializer}
    quantized = False
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in arrays:
            quantized = True
            arrays[node.output[0].removesuffix(_DEQUANTIZED_SUFFIX)] = _dequantize(node, arrays)

    nets = {}
    for name, array in arrays.items():
        match = _WEIGHT_NAME.match(name)
        if match:
            nets.setdefault(match["net"], {})[match["layer"], match["role"]] = array
    found = {net: _NET_NAME.match(net) for net in nets}
    chosen = [net for net, match in found.items() if match and match["architecture"] == architecture]
    if len(chosen) != 1:
        architectures = sorted(match["architecture"] for match in found.values() if match)
        contents = ", ".join(architectures) or "no net we export"
        if chosen:
            problem = f"{len(chosen)} {architecture} nets, where one is expected"
        else:
            problem = f"no {architecture} net"
        raise ValueError(f"{onnx_path} contains {problem} (it contains: {contents})")
    return OnnxNet(nets[chosen[0]], found[chosen[0]]["member"], quantized)


def _dequantize(node, arrays):
    """Return the float weight that a DequantizeLinear node computes from initializers."""
    values, scale = arrays[node.input[0]], arrays[node.input[1]]
    zero_point = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    if scale.ndim == 1 and values.ndim > 1:  # one scale per channel along the node's axis
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 1)
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((values.astype(np.float32) - zero_point.astype(np.float32)) * scale).astype(np.float32)


def _net_logits(onnx_path, net, faces):
    """Return the logits of `net` in `onnx_path` for (N, 48, 48) uint8 faces, without test-time views."""
    if net.member is None:
        return EmotionModel(onnx_path, flip_average=False, shift_pixels=0).logits(faces)
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_path))
    # An ensemble turns each member's logits into probabilities (node "memberN_softmax") or
    # averages them as they are (node "mean").
    output = next((node.input[0] for node in model.graph.node if node.name == f"{net.member}softmax"), None)
    if output is None:
        mean = next(node for node in model.graph.node if node.name == "mean")
        output = next(name for name in mean.input if name.startswith(net.member))
    model.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {session.get_inputs()[0].name: preprocess.to_model_input(faces)}
    return session.run([output], inputs)[0]


def rebuild(model, onnx_path, faces):
    """Load the weights of the net in `onnx_path` of `model`'s architecture into `model`, freshly built.

    `faces` are (N, 48, 48) uint8 faces (a few thousand Training faces) used to measure each
    batch-norm layer's input. Raises ValueError when the ONNX file does not contain this
    architecture, or the rebuilt model does not reproduce its logits (from 8-bit weights: its classes).
    """
    net = onnx_weights(onnx_path, model.name)
    weights = net.weights
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

    rebuilt = keras.ops.convert_to_numpy(model(inputs[:256], training=False))
    original = _net_logits(onnx_path, net, faces[:256])
    difference = float(np.abs(rebuilt - original).max())
    if net.quantized:
        # 8-bit activations make the outputs differ a little: compare the classes picked.
        agreement = float((rebuilt.argmax(axis=1) == original.argmax(axis=1)).mean())
        if agreement < MIN_QUANTIZED_AGREEMENT:
            raise ValueError(f"the float model rebuilt from the 8-bit {model.name} in {onnx_path} picks its "
                             f"class for {agreement:.1%} of sample faces, under the "
                             f"{MIN_QUANTIZED_AGREEMENT:.0%} required")
        log.info("Rebuilt a float %s from the 8-bit weights in %s: it picks the same class for %.1f%% of "
                 "%d sample faces (max logit difference %.2g)", model.name, onnx_path, 100 * agreement,
                 len(rebuilt), difference)
    elif difference > MAX_LOGIT_DIFFERENCE:
        raise ValueError(f"the model rebuilt from {onnx_path} differs from it by {difference:.2g} "
                         f"in logits, over the {MAX_LOGIT_DIFFERENCE:g} allowed")
    else:
        log.info("Rebuilt %s from %s (max logit difference %.1g)", model.name, onnx_path, difference)
    return model
