"""Quantize an exported emotion model to 8-bit integers for faster CPU inference in a quarter of the space.

ONNX Runtime's static quantization stores the weights as int8, one scale per output channel,
and the activations as uint8 with ranges measured on Training faces. The weights use 7 of the
8 bits (`reduce_range`): x86 CPUs without VNNI instructions add pairs of uint8 x int8 products
in 16 bits, which can saturate with full-range weights. ONNX Runtime's quantization API documents
`reduce_range` as 7-bit quantization for better accuracy on such CPUs.

NOTE: accuracy was measured only on a CPU with VNNI (AMD EPYC). Older x86 CPUs should give the
same figures with 7-bit weights, but that is unverified.
"""

import logging
import pathlib
import tempfile

import numpy as np
import onnx

from classifier.emotion import EmotionModel
from training import data

log = logging.getLogger(__name__)

CALIBRATION_FACES = 512
CALIBRATION_BATCH = 64
# Share of faces on which the quantized model must pick the float model's class. A lower figure
# means a broken conversion, not rounding: a trained vgg32 net agreed on 0.977 of 512 Training faces.
MIN_AGREEMENT = 0.9
FLOAT_OPS = {"Softmax", "Mean", "Log"}


class QuantizationError(Exception):
    """A model that cannot be quantized, or whose quantized predictions moved too far from the float model's."""


def calibration_faces(images, seed=0):
    """Return up to CALIBRATION_FACES of `images` (N, 48, 48) uint8, picked at random with `seed`."""
    return data.sample_images(images, CALIBRATION_FACES, seed)


def quantize(float_path, int8_path, faces):
    """Write an int8 copy of the ONNX model `float_path` to `int8_path`, calibrated on `faces`.

    `faces` are (N, 48, 48) uint8 Training faces. Returns the share of them on which both models
    pick the same class; raises QuantizationError when it is below MIN_AGREEMENT.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(faces) == 0:
        raise QuantizationError("no faces to measure the activation ranges on: the data needs Training faces")
    float_path, int8_path = pathlib.Path(float_path), pathlib.Path(int8_path)
    graph = onnx.load(str(float_path)).graph
    input_name = graph.input[0].name
    # An ensemble ends in Softmax, Mean and Log nodes. At 8 bits, small probabilities round to 0
    # and their log to -inf, so those nodes stay in float.
    float_nodes = [node.name for node in graph.node if node.op_type in FLOAT_OPS]
    batch = faces.astype(np.float32)[..., None]

    class FaceReader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{input_name: batch[start:start + CALIBRATION_BATCH]}
                                  for start in range(0, len(batch), CALIBRATION_BATCH)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as scratch:
        # quant_pre_process folds constants, fuses nodes and infers shapes before quantizing.
        # Its symbolic shape inference needs sympy and adds nothing for a fixed 48x48 input.
        prepared = pathlib.Path(scratch) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(str(prepared), str(int8_path), FaceReader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, nodes_to_exclude=float_nodes,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)

    agreement = top_class_agreement(float_path, int8_path, faces)
    log.info("Quantized %s to %s: %.0f KB -> %.0f KB; same class as the float model on %.3f of %d faces",
             float_path, int8_path, float_path.stat().st_size / 1024, int8_path.stat().st_size / 1024,
             agreement, len(faces))
    if agreement < MIN_AGREEMENT:
        raise QuantizationError(f"{int8_path}: the quantized model picks the float model's class on only "
                                f"{agreement:.3f} of {len(faces)} faces, under the {MIN_AGREEMENT} expected")
    return agreement


def top_class_agreement(first_path, second_path, faces):
    """Return the share of `faces` on which two ONNX models, run without test-time views, pick the same class."""
    first = EmotionModel(first_path, flip_average=False, shift_pixels=0).logits(faces)
    second = EmotionModel(second_path, flip_average=False, shift_pixels=0).logits(faces)
    return float((first.argmax(axis=1) == second.argmax(axis=1)).mean())
