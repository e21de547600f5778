"""The training package on tiny generated data: loading, a one-epoch run, resume, export, evaluate."""

import gzip
import json
import logging
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

from classifier.labels import EMOTIONS
from tests.conftest import ROOT
from training import data, metrics

ROWS_PER_SPLIT = {"Training": 28, "PublicTest": 14, "PrivateTest": 14}


def write_csv(path, rows_per_split=ROWS_PER_SPLIT, bad_rows=()):
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for split, count in rows_per_split.items():
        for index in range(count):
            pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
            lines.append(f"{index % len(EMOTIONS)},{pixels},{split}")
    lines.extend(bad_rows)
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def run_training_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_load_csv(tmp_path, suffix):
    faces = data.load(write_csv(tmp_path / f"fer{suffix}"))

    assert faces.images.shape == (56, 48, 48)
    assert faces.images.dtype == np.uint8
    assert len(faces.split("Training")) == 28
    assert len(faces.split("PrivateTest")) == 14
    assert set(faces.labels) == set(range(7))


def test_load_csv_reports_bad_rows(tmp_path, caplog):
    bad = ["9,1 2 3,Training", "1,not numbers,PublicTest", "2," + " ".join(["0"] * 2304) + ",Elsewhere"]
    path = write_csv(tmp_path / "fer.csv", bad_rows=bad)

    with caplog.at_level(logging.WARNING):
        faces = data.load(path)

    assert len(faces) == 56
    assert "skipped 3 bad item(s)" in caplog.text
    assert "row 58" in caplog.text  # header is row 1, 56 good rows, then the first bad one
    assert "row 60" in caplog.text


def test_load_cache_replaces_damaged_copy(tmp_path, caplog):
    path = write_csv(tmp_path / "fer.csv")
    cache = tmp_path / "cache"

    first = data.load(path, cache_dir=cache)
    (kept,) = cache.iterdir()
    kept.write_bytes(kept.read_bytes()[:100])  # a write cut short
    with caplog.at_level(logging.WARNING):
        again = data.load(path, cache_dir=cache)

    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(again.images, first.images)
    assert again.in_csv_order
    assert data.load(path, cache_dir=cache).in_csv_order  # the rewritten copy reads back
    assert [p.name for p in cache.iterdir()] == [kept.name]


def test_fer_plus_needs_csv_row_order(tmp_path):
    fer_plus = tmp_path / "fer2013new.csv"
    fer_plus.write_text("Usage,Image name," + ",".join(data.FER_PLUS_COLUMNS) + "\n")
    with_bad_row = data.load(write_csv(tmp_path / "fer.csv", bad_rows=["9,1 2 3,Training"]))
    folder = tmp_path / "tree" / "train" / "happy"
    folder.mkdir(parents=True)
    Image.new("L", (48, 48)).save(folder / "0.png")

    for faces in (with_bad_row, data.load(tmp_path / "tree")):
        with pytest.raises(data.DataError, match="matched to faces by their row"):
            data.load_fer_plus_votes(fer_plus, faces)
        with pytest.raises(data.DataError, match="matched to faces by their row"):
            data.load_fer_plus_majority(fer_plus, faces)


def test_load_csv_without_usable_rows(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("label,image\n1,2\n")

    with pytest.raises(data.DataError, match="missing CSV column"):
        data.load(path)


def test_load_folder_layout(tmp_path):
    for split, count in (("train", 3), ("test", 2), ("validation", 1)):
        for emotion in ("happy", "sad"):
            folder = tmp_path / split / emotion
            folder.mkdir(parents=True)
            for index in range(count):
                Image.new("L", (48, 48), 40 * index).save(folder / f"{index}.png")
    (tmp_path / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")

    faces = data.load(tmp_path)

    assert len(faces) == 12
    assert len(faces.split("Training")) == 6
    assert len(faces.split("PrivateTest")) == 4
    assert len(faces.split("PublicTest")) == 2
    assert set(faces.labels) == {EMOTIONS.index("happy"), EMOTIONS.index("sad")}


def test_metrics_on_hand_made_predictions():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    matrix = metrics.confusion_matrix(labels, predictions, 3)

    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics.per_class_recall(matrix).tolist() == [0.5, 1.0, 0.5]
    # F1 per class: 0.5, 0.8, 2/3
    assert metrics.macro_f1(matrix) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_accuracy_without_class_ignores_its_rows_and_output():
    labels = np.array([0, 1, 2])
    probabilities = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.5, 0.4]])

    assert metrics.accuracy_without_class(labels, probabilities, excluded=1) == 1.0


def test_calibration_metrics():
    labels = np.array([0, 1, 0, 1])
    confident = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])

    assert metrics.expected_calibration_error(labels, confident) == pytest.approx(0.15)
    logits = np.log(confident)
    # Right 3 times in 4 at 0.9 confidence: temperature 2 turns odds of 9:1 into 3:1, a confidence of 0.75.
    assert metrics.fit_temperature(labels, logits) == pytest.approx(2.0, rel=1e-5)
    # Always right: the loss keeps falling as the temperature does, down to the lowest one searched.
    assert metrics.fit_temperature(labels[:2], logits[:2]) == pytest.approx(0.25, rel=1e-5)


def test_train_resume_export_evaluate(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = tmp_path / "run"
    common = ["--data", csv_path, "--out", run_dir, "--architecture", "tiny", "--batch-size", "8",
              "--cache", tmp_path / "cache"]

    first = run_training_cli("train", *common, "--epochs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "epoch 1/1" in first.stderr
    assert "PublicTest accuracy" in first.stderr
    assert "shuffle=True" not in first.stderr
    assert (run_dir / "best.keras").exists()

    state = json.loads((run_dir / "run.json").read_text())
    state["recipe"]["epochs"] = 2
    state["recipe"]["keep_weights_from"] = 2
    (run_dir / "run.json").write_text(json.dumps(state))
    resumed = run_training_cli("train", *common, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    assert "epoch 2/2" in resumed.stderr
    assert len((run_dir / "history.csv").read_text().splitlines()) == 3
    assert [path.name for path in (run_dir / "weights").iterdir()] == ["epoch-002.npz"]

    continued = run_training_cli("train", *common[:3], tmp_path / "continued", *common[4:], "--epochs", "1",
                                 "--init-from", run_dir / "best.keras", cwd=tmp_path)
    assert continued.returncode == 0, continued.stderr
    assert f"Starting from the weights of {run_dir / 'best.keras'}" in continued.stderr
    continued_state = json.loads((tmp_path / "continued" / "run.json").read_text())
    assert continued_state["init_from_sha256"] == data.file_sha256(run_dir / "best.keras")

    # A run stopped before its first epoch ended has no last.keras: resuming starts from the same model again.
    (tmp_path / "continued" / "last.keras").unlink()
    continued_state["epochs_done"] = 0
    (tmp_path / "continued" / "run.json").write_text(json.dumps(continued_state))
    restarted = run_training_cli("train", *common[:3], tmp_path / "continued", *common[4:], "--resume", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    assert f"Starting from the weights of {run_dir / 'best.keras'}" in restarted.stderr

    onnx_path = tmp_path / "model" / "emotion.onnx"
    exported = run_training_cli("export", "--model", run_dir / "best.keras", "--data", csv_path,
                                "--out", onnx_path, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    settings = json.loads(onnx_path.with_suffix(".json").read_text())
    assert settings["temperature"] > 0

    evaluated = run_training_cli("evaluate", "--data", csv_path, "--split", "PrivateTest", "--model", onnx_path,
                                 "--confusion-matrix", tmp_path / "cm.png", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert result["n"] == 14
    assert 0 <= result["accuracy"] <= 1
    assert set(result["per_class_recall"]) == set(EMOTIONS)
    assert "macro_f1" in result
    assert Image.open(tmp_path / "cm.png").format == "PNG"

    # A .keras model is exported to a scratch folder that is removed after; the JSON line names the given file.
    scratch_before = set(pathlib.Path(tempfile.gettempdir()).iterdir())
    evaluated = run_training_cli("evaluate", "--data", csv_path, "--split", "PrivateTest",
                                 "--model", run_dir / "best.keras", "--confusion-matrix", tmp_path / "cm.png",
                                 cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    keras_result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert keras_result["model"] == str(run_dir / "best.keras")
    assert keras_result["temperature"] == pytest.approx(settings["temperature"], rel=1e-4)  # fitted as by export
    leftover_exports = [path for path in set(pathlib.Path(tempfile.gettempdir()).iterdir()) - scratch_before
                        if (path / "model.onnx").exists()]
    assert not leftover_exports


@pytest.mark.parametrize("setting, value", [
    ("architecture", "vgg99"), ("epochs", 0), ("batch_size", 0), ("peak_learning_rate", 0.0),
    ("warmup_epochs", -1), ("momentum", 1.0), ("weight_decay", -1e-4), ("label_smoothing", 1.0),
    ("fer_plus_weight", 1.5), ("erasing_probability", -0.1), ("keep_weights_from", -1),
    ("patience_epochs", 0), ("seed", -1), ("teacher_weight", 1.5), ("teacher_temperature", 0.0),
    ("teacher_temperature", float("inf")), ("mixup_alpha", -0.2), ("mixup_alpha", 0.01),
    ("cutmix_probability", 1.5),
])
def test_recipe_reports_invalid_setting(setting, value):
    from training.recipe import Recipe

    problems = Recipe(**{setting: value}).problems()

    assert len(problems) == 1
    assert problems[0].startswith("--" + setting.replace("_", "-"))


def test_recipe_defaults_are_valid():
    from training.recipe import Recipe

    assert Recipe().problems() == []


def test_train_rejects_invalid_settings(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--epochs", "0",
                              "--batch-size", "-8", cwd=tmp_path)

    assert result.returncode == 2
    assert "invalid training settings: --epochs 0: expected 1 or more; --batch-size -8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_refuses_to_overwrite_a_run(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", cwd=tmp_path)

    assert result.returncode == 2
    assert "already contains a run" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_rejects_other_architecture_model(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--architecture", "tiny",
                              "--init-from", ROOT / "models" / "emotion-float.onnx", "--cache", tmp_path / "cache",
                              cwd=tmp_path)

    assert result.returncode == 2
    assert "emotion-float.onnx contains no tiny net (it contains: vgg32)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, content", [("damaged.onnx", b"not a model"), ("faces.csv", b"emotion,pixels")])
def test_train_reports_an_unreadable_start_model(tmp_path, name, content):
    csv_path = write_csv(tmp_path / "fer.csv")
    (tmp_path / name).write_bytes(content)

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--architecture", "tiny",
                              "--init-from", tmp_path / name, "--cache", tmp_path / "cache", cwd=tmp_path)

    assert result.returncode == 2
    assert f"{name}: not readable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_reports_a_missing_start_model(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run",
                              "--init-from", tmp_path / "absent.onnx", cwd=tmp_path)

    assert result.returncode == 2
    assert "absent.onnx: model to start from not found" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_rejects_resume_with_other_settings(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = {"recipe": {"architecture": "tiny", "epochs": 2}, "epochs_done": 1}
    (run_dir / "run.json").write_text(json.dumps(state))

    result = run_training_cli("train", "--data", csv_path, "--out", run_dir, "--resume", "--epochs", "5",
                              "--architecture", "tiny", cwd=tmp_path)

    assert result.returncode == 2
    assert "--epochs 5 (the run has 2)" in result.stderr
    assert "--architecture" not in result.stderr


@pytest.mark.parametrize("start_model, message", [
    (b"changed weights", "has changed since this run started from it"),
    (None, "the model this run started from is not found"),
])
def test_train_resume_checks_start_model(tmp_path, start_model, message):
    csv_path = write_csv(tmp_path / "fer.csv")
    start_path = tmp_path / "start.keras"
    if start_model is not None:
        start_path.write_bytes(start_model)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = {"recipe": {"architecture": "tiny", "epochs": 2}, "epochs_done": 0, "best_epoch": 0,
             "best_public_test_accuracy": 0.0, "init_from": str(start_path), "init_from_sha256": "0" * 64}
    (run_dir / "run.json").write_text(json.dumps(state))

    result = run_training_cli("train", "--data", csv_path, "--out", run_dir, "--resume", cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("epochs_done, best_epoch, stops", [(5, 2, True), (5, 5, False), (0, 0, False)])
def test_early_stopping_patience_survives_resume(epochs_done, best_epoch, stops):
    import keras

    from training.train import ResumableEarlyStopping

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    state = {"epochs_done": epochs_done, "best_epoch": best_epoch, "best_public_test_accuracy": 0.6}
    callback = ResumableEarlyStopping(state, monitor="val_accuracy", mode="max", patience=3)
    callback.set_model(model)
    model.stop_training = False

    callback.on_train_begin()
    callback.on_epoch_end(epochs_done, {"val_accuracy": 0.5})  # one more epoch, below the best

    assert model.stop_training is stops


def test_train_resume_after_early_stop_does_nothing(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = {"recipe": {"architecture": "tiny", "epochs": 10, "patience_epochs": 3}, "epochs_done": 5,
             "best_epoch": 2, "best_public_test_accuracy": 0.6}
    (run_dir / "run.json").write_text(json.dumps(state))

    result = run_training_cli("train", "--data", csv_path, "--out", run_dir, "--resume", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "stopped early after epoch 5" in result.stderr
    assert not (run_dir / "history.csv").exists()


def test_resume_changes_augmentation_seed(tmp_path, monkeypatch):
    from training import augment, train
    from training.recipe import Recipe

    seeds = []
    build_augmenter = augment.build_augmenter

    def recording_augmenter(seed, erasing_probability=0.0):
        seeds.append(seed)
        return build_augmenter(seed, erasing_probability)

    monkeypatch.setattr(augment, "build_augmenter", recording_augmenter)
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = tmp_path / "run"
    train.train(csv_path, run_dir, Recipe(architecture="tiny", epochs=1, batch_size=8, seed=5))
    state = json.loads((run_dir / "run.json").read_text())
    state["recipe"]["epochs"] = 2
    (run_dir / "run.json").write_text(json.dumps(state))
    train.train(csv_path, run_dir, None, resume=True)

    # A new run keeps the recipe's seed, so the shipped recipes reproduce. The resumed run uses another seed.
    assert seeds[0] == 5
    assert seeds[1] != seeds[0]
    assert json.loads((run_dir / "run.json").read_text())["epochs_done"] == 2


def _resumable_run(tmp_path, **state):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = {"recipe": {"architecture": "tiny", "epochs": 2}, "epochs_done": 1, "best_epoch": 1,
             "best_public_test_accuracy": 0.5, **state}
    (run_dir / "run.json").write_text(json.dumps(state))
    return run_dir


@pytest.mark.parametrize("state, options, message", [
    ({}, [], "which --resume continues from, is gone"),
    ({"data_sha256": "0" * 64}, [], "is not the data this run was trained on"),
    ({"fer_plus": "/elsewhere/fer2013new.csv"}, ["--fer-plus", "votes.csv"], "not --fer-plus votes.csv"),
    ({}, ["--fer-plus", "votes.csv"], "continues a run without FER+ votes"),
])
def test_resume_rejects_unmatched_run(tmp_path, state, options, message):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = _resumable_run(tmp_path, **state)

    result = run_training_cli("train", "--data", csv_path, "--out", run_dir, "--resume", *options, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"epochs_done": 1}'])
def test_resume_reports_damaged_state(tmp_path, content):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = _resumable_run(tmp_path)
    (run_dir / "run.json").write_bytes(content)

    result = run_training_cli("train", "--data", csv_path, "--out", run_dir, "--resume", cwd=tmp_path)

    assert result.returncode == 2
    assert "not a readable run state" in result.stderr
    assert "Traceback" not in result.stderr


def test_warm_up_leaves_decay_epoch():
    from training.recipe import Recipe
    from training.train import learning_rate_schedule

    schedule = learning_rate_schedule(Recipe(epochs=1, warmup_epochs=2), steps_per_epoch=10)

    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(10)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("options, message", [
    (["--model", "absent.onnx"], "emotion model not found"),
    (["--model", "absent.keras"], "not readable as a .keras model"),
    (["--shift-pixels", "-1"], "expected a whole number of pixels"),
    (["--confusion-matrix", "plot.png/cm.png"], "--confusion-matrix plot.png/cm.png: cannot create its folder"),
])
def test_evaluate_reports_bad_options(tmp_path, options, message):
    csv_path = write_csv(tmp_path / "fer.csv")
    (tmp_path / "plot.png").write_text("a file where a folder would go")

    result = run_training_cli("evaluate", "--data", csv_path, *options, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_train_rejects_resume_with_start_model(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--resume",
                              "--init-from", ROOT / "models" / "emotion-float.onnx", cwd=tmp_path)

    assert result.returncode == 2
    assert "pass one or the other" in result.stderr


def test_soft_targets_mix_in_teacher():
    from training.recipe import Recipe
    from training.train import soft_targets

    votes = np.array([[0, 0, 0, 1, 0, 0, 0], [0] * 7], dtype=np.float32)  # no votes for the second face
    faces = data.FaceSet(np.zeros((2, 48, 48), np.uint8), np.array([0, 3]), np.array(["Training"] * 2), votes)
    teacher = np.full((2, 7), 1 / 7, dtype=np.float32)

    targets = soft_targets(faces, Recipe(fer_plus_weight=0.3, teacher_weight=0.5), teacher)

    np.testing.assert_allclose(targets[0], 0.5 * np.array([0.7, 0, 0, 0.3, 0, 0, 0]) + 0.5 / 7, rtol=1e-6)
    np.testing.assert_allclose(targets[1], 0.5 * np.eye(7)[3] + 0.5 / 7, rtol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-6)


def test_fer_plus_majority_counts_all_ten_columns(tmp_path):
    from training.evaluate import fer_plus_majority

    # Columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
    rows = [
        [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],  # happiness wins
        [1, 0, 0, 0, 0, 0, 0, 5, 0, 0],  # contempt wins, though neutral leads our seven
        [0, 0, 0, 0, 0, 0, 1, 0, 0, 9],  # most annotators marked it as not a face
        [0, 0, 0, 3, 3, 0, 0, 0, 0, 0],  # sadness and anger tie
        [0, 0, 0, 0, 4, 0, 0, 0, 4, 0],  # anger and unknown tie
        [0] * 10,  # no votes
    ]
    path = tmp_path / "fer2013new.csv"
    lines = ["Usage,Image name," + ",".join(data.FER_PLUS_COLUMNS)]
    lines += [f"PrivateTest,fer{index:07d}.png," + ",".join(map(str, row)) for index, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")

    faces = data.FaceSet(np.zeros((len(rows), 48, 48), np.uint8), np.zeros(len(rows), np.int64),
                         np.array(["PrivateTest"] * len(rows)), in_csv_order=True)
    majority = data.load_fer_plus_majority(path, faces)
    votes = data.load_fer_plus_votes(path, faces)

    assert majority.tolist() == [3, -1, -1, -1, -1, -1]
    assert votes[1].tolist() == [0, 0, 0, 0, 0, 0, 1]  # the soft target keeps our seven classes only
    assert votes[5].tolist() == [0] * 7
    predictions = np.array([3, 6, 2, 4, 0, 6])
    assert fer_plus_majority(majority, predictions) == {"fer_plus_majority_accuracy": 1.0, "fer_plus_n": 1}
    assert fer_plus_majority(majority[1:], predictions[1:]) == {"fer_plus_majority_accuracy": None, "fer_plus_n": 0}


@pytest.mark.parametrize("mixup_alpha, cutmix_probability", [(0.0, 1.0), (0.4, 0.0), (0.4, 0.5)])
def test_mix_batch_mixes_faces_and_targets_alike(mixup_alpha, cutmix_probability):
    import tensorflow as tf

    from training.augment import mix_batch

    # Face i is flat gray at 10 * i and has its own class, so both shares can be read off.
    count = 8
    images = tf.constant(np.stack([np.full((48, 48, 1), 10.0 * i, np.float32) for i in range(count)]))
    targets = tf.constant(np.eye(count, dtype=np.float32))

    mixed, mixed_targets = mix_batch(images, targets, tf.random.Generator.from_seed(0), mixup_alpha,
                                     cutmix_probability)

    mixed, mixed_targets = mixed.numpy(), mixed_targets.numpy()
    partner = np.roll(np.arange(count), 1)
    share = mixed_targets[np.arange(count), partner]
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1, rtol=1e-6)
    expected_means = (1 - share) * 10.0 * np.arange(count) + share * 10.0 * partner
    np.testing.assert_allclose(mixed.mean(axis=(1, 2, 3)), expected_means, atol=1e-3)
    assert share.max() > 0
    if mixup_alpha == 0:  # CutMix alone pastes pixels unchanged
        assert set(np.unique(mixed[3])) <= {20.0, 30.0}


def test_train_with_mixup_and_cutmix(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--cache", tmp_path / "cache",
                              "--architecture", "tiny", "--batch-size", "8", "--epochs", "1", "--mixup-alpha", "0.2",
                              "--cutmix-probability", "0.5", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (state["recipe"]["mixup_alpha"], state["recipe"]["cutmix_probability"]) == (0.2, 0.5)


def test_train_distils_a_teacher(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")
    run_dir = tmp_path / "run"
    teacher = tmp_path / "teacher.onnx"
    shutil.copy(ROOT / "models" / "emotion-float.onnx", teacher)
    common = ["--data", csv_path, "--out", run_dir, "--cache", tmp_path / "cache"]

    result = run_training_cli("train", *common, "--architecture", "tiny", "--batch-size", "8", "--epochs", "1",
                              "--teacher", teacher, "--teacher-temperature", "3", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"Teacher {teacher}: accuracy" in result.stderr
    state = json.loads((run_dir / "run.json").read_text())
    assert state["teacher"] == str(teacher)
    assert state["teacher_sha256"] == data.file_sha256(teacher)
    assert state["recipe"]["teacher_temperature"] == 3
    with np.load(run_dir / "teacher-probabilities.npz") as saved:
        probabilities = saved["probabilities"]
    assert probabilities.shape == (ROWS_PER_SPLIT["Training"], len(EMOTIONS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)

    other = run_training_cli("train", *common, "--resume", "--teacher", tmp_path / "other.onnx", cwd=tmp_path)
    assert other.returncode == 2
    assert "saved teacher" in other.stderr

    state["recipe"]["epochs"] = 2
    (run_dir / "run.json").write_text(json.dumps(state))
    (run_dir / "teacher-probabilities.npz").unlink()
    shutil.copy(ROOT / "models" / "emotion.onnx", teacher)
    changed = run_training_cli("train", *common, "--resume", cwd=tmp_path)
    assert changed.returncode == 2
    assert "changed since the run started" in changed.stderr


def test_train_rejects_teacher_settings_without_teacher(tmp_path):
    csv_path = write_csv(tmp_path / "fer.csv")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--teacher-weight", "0.9",
                              cwd=tmp_path)

    assert result.returncode == 2
    assert "--teacher-weight apply only to a run with a --teacher" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, message", [
    ("absent.onnx", "absent.onnx: teacher model not found"),
    ("folder.onnx", "folder.onnx: not a file"),
    ("teacher.keras", "expected an .onnx model"),
    ("text.onnx", "text.onnx: cannot load the emotion model"),
])
def test_train_reports_an_unusable_teacher(tmp_path, name, message):
    csv_path = write_csv(tmp_path / "fer.csv")
    if name.startswith("folder"):
        (tmp_path / name).mkdir()
    elif not name.startswith("absent"):
        (tmp_path / name).write_text("not a model")

    result = run_training_cli("train", "--data", csv_path, "--out", tmp_path / "run", "--architecture", "tiny",
                              "--teacher", tmp_path / name, "--cache", tmp_path / "cache", cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_rebuild_the_shipped_model_from_onnx():
    from training import models, warm_start

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48)).astype(np.uint8)
    model = warm_start.rebuild(models.ARCHITECTURES["vgg32"](), ROOT / "models" / "emotion-float.onnx", faces)

    # rebuild() checks the logits itself; in training mode the rebuilt batch norms must stay finite.
    trained_mode = np.asarray(model(faces[..., None].astype(np.float32), training=True))
    assert np.isfinite(trained_mode).all()
    with pytest.raises(ValueError, match=r"contains no vgg48 net \(it contains: vgg32\)"):
        warm_start.rebuild(models.ARCHITECTURES["vgg48"](), ROOT / "models" / "emotion-float.onnx", faces)


def test_rebuild_from_the_8_bit_ensemble():
    from training import models, warm_start

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48)).astype(np.uint8)

    # rebuild() checks that the float net picks the 8-bit member's classes.
    model = warm_start.rebuild(models.ARCHITECTURES["vgg48"](), ROOT / "models" / "emotion.onnx", faces)

    assert np.isfinite(np.asarray(model(faces[..., None].astype(np.float32), training=True))).all()
    with pytest.raises(ValueError, match=r"contains no vgg64 net \(it contains: vgg32, vgg48\)"):
        warm_start.onnx_weights(ROOT / "models" / "emotion.onnx", "vgg64")


def test_average_weights_and_batch_norm(tmp_path):
    import keras

    from training import average, models

    keras.utils.set_random_seed(1)
    paths = [tmp_path / "epoch-1.npz", tmp_path / "epoch-2.weights.h5"]
    average.save_weights(models.ARCHITECTURES["vgg32"](), paths[0])
    models.ARCHITECTURES["vgg32"]().save_weights(paths[1])
    faces = np.random.default_rng(0).integers(0, 256, (32, 48, 48)).astype(np.uint8)

    averaged = average.average(paths, "vgg32", faces)

    kernels = []
    for path in paths:
        model = models.ARCHITECTURES["vgg32"]()
        average.load_weights(model, path)
        kernels.append(model.get_layer("block2_conv1").get_weights()[0])
    np.testing.assert_allclose(averaged.get_layer("block2_conv1").get_weights()[0], np.mean(kernels, axis=0),
                               rtol=1e-5, atol=1e-7)
    # The first batch norm's input is the first convolution of the raw faces.
    before = keras.Model(averaged.inputs, averaged.get_layer("block1_conv1").output)
    values = np.asarray(before(faces[..., None].astype(np.float32)))
    moving_mean = averaged.get_layer("block1_bn1").get_weights()[2]
    np.testing.assert_allclose(moving_mean, values.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not readable as vgg48 weights"):
        average.average(paths, "vgg48", faces)
    (tmp_path / "empty.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="not readable as vgg32 weights"):
        average.average([tmp_path / "empty.weights.h5"], "vgg32", faces)


@pytest.mark.parametrize("options, message", [
    (["--out", "averaged"], "name it *.keras"),
    (["--out", "averaged.keras", "--seed", "-1"], "the seed must be 0 or more"),
], ids=["out-suffix", "negative-seed"])
def test_average_rejects_bad_options(tmp_path, options, message):
    csv_path = write_csv(tmp_path / "fer.csv")
    result = run_training_cli("average", "--weights", ROOT / "README.md", "--data", csv_path, *options,
                              cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr


def test_average_saves_a_member_of_the_shipped_ensemble(tmp_path):
    import keras

    csv_path = write_csv(tmp_path / "fer.csv")
    out = tmp_path / "vgg48.keras"

    result = run_training_cli("average", "--weights", ROOT / "models" / "emotion.onnx", "--architecture", "vgg48",
                              "--data", csv_path, "--out", out, "--cache", tmp_path / "cache", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Rebuilt a float vgg48 from the 8-bit weights" in result.stderr
    assert keras.models.load_model(out).name == "vgg48"


def test_evaluate_reports_missing_data(tmp_path):
    result = run_training_cli("evaluate", "--data", tmp_path / "absent.csv", cwd=tmp_path)

    assert result.returncode == 2
    assert "data not found" in result.stderr
