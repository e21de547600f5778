"""Checks on the shared real data sets; they skip when ../shared/data is absent."""

import json
import subprocess
import sys

from benchmarks.faces import measure
from tests.conftest import ROOT

# The shipped model's PrivateTest accuracy is 0.6+ (see models/README.md); a drop below this
# means the model, its settings file or the preprocessing changed.
MIN_SHIPPED_ACCURACY = 0.69
# Confidences shown to users must be honest: temperature scaling keeps this error low.
MAX_SHIPPED_CALIBRATION_ERROR = 0.03


def test_face_detection_on_boxed_photos(reader, faces_dir):
    result = measure(reader, faces_dir)

    assert result["faces"] == 43
    assert result["recall"] >= 0.9
    assert result["faces_in_dogs"] == 0


def test_shipped_model_accuracy_on_private_test(fer2013_csv, tmp_path):
    result = subprocess.run([sys.executable, "-m", "training", "evaluate", "--data", str(fer2013_csv),
                             "--split", "PrivateTest", "--confusion-matrix", str(tmp_path / "cm.png"),
                             "--cache", str(tmp_path / "cache")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["n"] == 3589
    assert figures["accuracy"] >= MIN_SHIPPED_ACCURACY
    assert figures["expected_calibration_error"] <= MAX_SHIPPED_CALIBRATION_ERROR
