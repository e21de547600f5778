"""Combine several exported emotion models into one ONNX file that the classifier loads as usual.

Each member keeps its own weights and runs on the same input. The combined graph returns the
log of the members' mean softmax probabilities (or the mean of their logits), which is a valid
set of logits: the classifier's temperature and test-time views apply to it unchanged.
"""

import logging
import pathlib

import numpy as np
import onnx
from onnx import compose, helper

from classifier.emotion import EmotionModel, softmax
from classifier.labels import EMOTIONS
from classifier.preprocess import FACE_SIZE
from training.export import check_logits, probe_faces

log = logging.getLogger(__name__)

AVERAGES = ("probabilities", "logits")
INPUT_NAME = "face"
OUTPUT_NAME = "logits"


class EnsembleError(Exception):
    """Member models that cannot be combined."""


def combine(member_paths, average="probabilities"):
    """Return an ONNX model that runs every member on one input and averages their outputs."""
    if average not in AVERAGES:
        raise EnsembleError(f"unknown average {average!r}: choose one of {', '.join(AVERAGES)}")
    if len(member_paths) < 2:
        raise EnsembleError("an ensemble needs at least two member models")
    members = [onnx.load(str(path)) for path in member_paths]
    opsets = _merge_opsets(members)

    nodes, initializers, outputs = [], [], []
    for index, (path, member) in enumerate(zip(member_paths, members)):
        if len(member.graph.input) != 1 or len(member.graph.output) != 1:
            raise EnsembleError(f"{path}: expected one input and one output, found "
                                f"{len(member.graph.input)} and {len(member.graph.output)}")
        member = compose.add_prefix(member, prefix=f"member{index}_")
        # Each member reads the shared input through an Identity node named after its own input.
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [member.graph.input[0].name],
                                      name=f"member{index}_input"))
        nodes.extend(member.graph.node)
        initializers.extend(member.graph.initializer)
        member_output = member.graph.output[0].name
        if average == "probabilities":
            probabilities = f"member{index}_probabilities"
            nodes.append(helper.make_node("Softmax", [member_output], [probabilities], axis=-1,
                                          name=f"member{index}_softmax"))
            member_output = probabilities
        outputs.append(member_output)

    if average == "probabilities":
        nodes.append(helper.make_node("Mean", outputs, ["mean_probabilities"], name="mean"))
        nodes.append(helper.make_node("Log", ["mean_probabilities"], [OUTPUT_NAME], name="log"))
    else:
        nodes.append(helper.make_node("Mean", outputs, [OUTPUT_NAME], name="mean"))

    graph = helper.make_graph(
        nodes, "emotion_ensemble",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["N", FACE_SIZE, FACE_SIZE, 1])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["N", len(EMOTIONS)])],
        initializer=initializers,
    )
    combined = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version)
                                                       for domain, version in opsets.items()],
                                 producer_name="emotion-bot training.ensemble")
    combined.ir_version = min(member.ir_version for member in members)
    onnx.checker.check_model(combined)
    return combined


def write(member_paths, onnx_path, average="probabilities"):
    """Write the combined model to `onnx_path`; check it against the members run one by one."""
    onnx_path = pathlib.Path(onnx_path)
    probe = probe_faces()
    member_logits = [EmotionModel(path, flip_average=False, shift_pixels=0).logits(probe) for path in member_paths]
    expected = _average(member_logits, average)

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(combine(member_paths, average), str(onnx_path))

    difference = check_logits(onnx_path, probe, expected, source="its members run one by one")
    log.info("Combined %d models into %s (max logit difference %.1g)", len(member_paths), onnx_path, difference)
    return onnx_path


def _average(member_logits, average):
    if average == "logits":
        return np.mean(member_logits, axis=0)
    return np.log(np.mean([softmax(logits) for logits in member_logits], axis=0))


def _merge_opsets(members):
    """Return {domain: version} of every opset the members import; raise if a domain's versions differ."""
    versions = {}
    for member in members:
        for opset in member.opset_import:
            domain = "" if opset.domain == "ai.onnx" else opset.domain  # two names of the default domain
            versions.setdefault(domain, set()).add(opset.version)
    for domain, found in versions.items():
        if len(found) != 1:
            raise EnsembleError(f"the members use different ONNX opsets {sorted(found)} for the domain "
                                f"{domain or 'ai.onnx'}: export them with one Keras version")
    return {domain: found.pop() for domain, found in versions.items()}
