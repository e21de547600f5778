"""Train an emotion model on FER2013: Training to fit, PublicTest to pick epochs and settings.

A run lives in one folder: `last.keras` (model and optimizer, saved after every epoch, what
`--resume` continues from), `best.keras` (the epoch with the best PublicTest accuracy),
`history.csv`, `run.json` (the settings and progress of the run) and, with `--keep-weights-from`,
`weights/epoch-NNN.npz` (each epoch's weights, for `python -m training average`).
"""

import csv
import dataclasses
import hashlib
import json
import logging
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from classifier import preprocess
from classifier.labels import EMOTIONS
from training import augment, average, data, models
from training.recipe import Recipe

log = logging.getLogger(__name__)


def soft_targets(faces, recipe, teacher=None):
    """Return (N, 7) training targets: one-hot labels mixed with FER+ votes, a teacher and smoothing.

    With FER+ weight w below 0.5 the FER2013 label always keeps the largest share, so the
    votes only spread the rest over the classes annotators also saw in the face. `teacher`
    contains (N, 7) probabilities of a trained model for the same faces (distillation); they take
    `recipe.teacher_weight` of what the label and votes make.
    """
    targets = np.eye(len(EMOTIONS), dtype=np.float32)[faces.labels]
    if faces.votes is not None and recipe.fer_plus_weight > 0:
        has_votes = faces.votes.sum(axis=1) > 0
        mixed = (1 - recipe.fer_plus_weight) * targets + recipe.fer_plus_weight * faces.votes
        targets = np.where(has_votes[:, None], mixed, targets)
    if teacher is not None and recipe.teacher_weight > 0:
        targets = (1 - recipe.teacher_weight) * targets + recipe.teacher_weight * teacher
    if recipe.label_smoothing > 0:
        targets = (1 - recipe.label_smoothing) * targets + recipe.label_smoothing / len(EMOTIONS)
    return targets


def augmentation_seed(seed, epochs_done):
    """Return the augmentation layers' seed for a run that starts or resumes after `epochs_done` epochs.

    Keras' random layers restart their streams from their seed in each process, so a resumed run
    seeded with the recipe's seed alone would draw epoch 1's augmentations again. A new run keeps
    the recipe's seed. The layers take seeds up to 6 above it, so each resume moves it by 100 per epoch.
    """
    return seed + 100 * epochs_done


def make_dataset(faces, targets, batch_size, augmenter=None, seed=0, mixer=None):
    """Return batches of (faces, targets); `augmenter` and `mixer` (faces, targets -> both) apply per batch."""
    images = preprocess.to_model_input(faces.images)
    dataset = tf.data.Dataset.from_tensor_slices((images, targets))
    if augmenter is not None:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augmenter is not None:
        dataset = dataset.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if mixer is not None:
        dataset = dataset.map(mixer, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def learning_rate_schedule(recipe, steps_per_epoch):
    """Return the recipe's schedule: linear warm-up from a tenth of the peak, then cosine decay to 0."""
    total_steps = recipe.epochs * steps_per_epoch
    # The cosine decay needs at least the last epoch, so a warm-up as long as the run is cut short.
    warmup_epochs = min(recipe.warmup_epochs, recipe.epochs - 1)
    if warmup_epochs < recipe.warmup_epochs:
        log.info("Warm-up shortened to %d epoch(s), so that the learning rate decays over the last one",
                 warmup_epochs)
    warmup_steps = warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.peak_learning_rate / 10,
        warmup_target=recipe.peak_learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=max(total_steps - warmup_steps, 1),
    )


def build_model(recipe, steps_per_epoch):
    model = models.ARCHITECTURES[recipe.architecture]()
    schedule = learning_rate_schedule(recipe, steps_per_epoch)
    optimizer = keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True,
                                     weight_decay=recipe.weight_decay)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping that, in a resumed run, counts the patience from the run's best epoch so far.

    Keras' own callback starts counting afresh at every `fit`, which would grant each resume full patience again.
    """

    def __init__(self, state, **options):
        super().__init__(**options)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.state["epochs_done"] > 0:
            self.best = self.state["best_public_test_accuracy"]
            self.wait = self.state["epochs_done"] - self.state["best_epoch"]


class Checkpointer(keras.callbacks.Callback):
    """Save `last.keras` every epoch and `best.keras` on a new best PublicTest accuracy; log a line.

    From epoch `keep_weights_from` on (0: never), also save each epoch's weights for `average`.
    """

    def __init__(self, run_dir, state, keep_weights_from=0):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self.keep_weights_from = keep_weights_from
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self.epoch_started
        learning_rate = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            "loss": round(logs["loss"], 4),
            "accuracy": round(logs["accuracy"], 4),
            "public_test_loss": round(logs["val_loss"], 4),
            "public_test_accuracy": round(logs["val_accuracy"], 4),
            "learning_rate": f"{learning_rate:.5f}",
            "seconds": round(seconds, 1),
        }
        log.info("epoch %d/%d  loss %.4f  accuracy %.4f  PublicTest accuracy %.4f  lr %s  %.0f s",
                 row["epoch"], self.params["epochs"], row["loss"], row["accuracy"],
                 row["public_test_accuracy"], row["learning_rate"], seconds)

        history = self.run_dir / "history.csv"
        is_new = not history.exists()
        with open(history, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(row))
            if is_new:
                writer.writeheader()
            writer.writerow(row)

        if row["public_test_accuracy"] > self.state["best_public_test_accuracy"]:
            self.state["best_public_test_accuracy"] = row["public_test_accuracy"]
            self.state["best_epoch"] = row["epoch"]
            save_model(self.model, self.run_dir / "best.keras")
        if self.keep_weights_from and row["epoch"] >= self.keep_weights_from:
            (self.run_dir / "weights").mkdir(exist_ok=True)
            average.save_weights(self.model, self.run_dir / "weights" / f"epoch-{row['epoch']:03d}.npz")
        self.state["epochs_done"] = row["epoch"]
        self.state["train_seconds"] = round(self.state.get("train_seconds", 0) + seconds, 1)
        # Save the model before the state that points at it, so a crash between the two
        # repeats an epoch instead of skipping one.
        save_model(self.model, self.run_dir / "last.keras")
        write_state(self.run_dir, self.state)


def save_model(model, path):
    """Save `model` to the .keras file `path` through a temporary file, so that a crash mid-write keeps the old one."""
    temporary = path.with_name(path.stem + ".partial.keras")
    model.save(temporary)
    temporary.replace(path)


def start_from(model, path, train_faces, seed):
    """Load the weights of the trained model at `path` into `model`, built with the same architecture."""
    path = pathlib.Path(path)
    if path.suffix.lower() == ".onnx":
        from training import warm_start

        try:
            warm_start.rebuild(model, path, average.sample_images(train_faces.images, seed))
        except ValueError as error:
            raise data.DataError(str(error)) from None
    else:
        try:
            trained = keras.models.load_model(path)
        except (OSError, ValueError) as error:
            raise data.DataError(f"--init-from {path}: not readable as a .keras model or an .onnx file "
                                 f"({str(error).splitlines()[0]})") from None
        if [w.shape for w in trained.weights] != [w.shape for w in model.weights]:
            raise data.DataError(f"{path} contains a {trained.name} model, not a {model.name} model")
        model.set_weights(trained.get_weights())
    log.info("Starting from the weights of %s", path)


TEACHER_CACHE = "teacher-probabilities.npz"


def _check_start_model_unchanged(path, expected_sha256):
    if not pathlib.Path(path).is_file():
        raise data.DataError(f"{path}: the model this run started from is not found, and the run has no "
                             f"finished epoch to resume from: restore the file, or start a new run")
    if data.file_sha256(path) != expected_sha256:
        raise data.DataError(f"{path} has changed since this run started from it, and the run has no finished "
                             f"epoch to resume from: start a new run")


def check_teacher(path):
    """Return the sha256 of the teacher model at `path`; raise DataError unless it is an .onnx file."""
    path = pathlib.Path(path)
    if not path.is_file():
        problem = "not a file" if path.exists() else "teacher model not found"
        raise data.DataError(f"--teacher {path}: {problem}")
    if path.suffix.lower() != ".onnx":
        raise data.DataError(f"--teacher {path}: expected an .onnx model, such as one written by "
                             f"`python -m training export` or `ensemble`")
    return data.file_sha256(path)


def teacher_probabilities(teacher_path, teacher_sha256, faces, temperature, run_dir):
    """Return the teacher's (N, 7) probabilities for `faces` at `temperature`, cached in the run folder.

    The teacher is any ONNX model the classifier loads (an export or an ensemble). It runs once,
    with its own test-time views, on the plain faces, so each augmented face gets the target of its
    original. The cache is used only for the same teacher file, temperature and faces.
    """
    cache = run_dir / TEACHER_CACHE
    key = json.dumps({"teacher_sha256": teacher_sha256, "temperature": temperature,
                      "faces_sha256": hashlib.sha256(faces.images.tobytes()).hexdigest()})
    try:
        with np.load(cache) as saved:
            if str(saved["key"]) == key:
                log.info("Using the teacher's probabilities saved in %s", cache)
                return saved["probabilities"]
    except (OSError, ValueError, KeyError):
        pass

    if check_teacher(teacher_path) != teacher_sha256:
        raise data.DataError(f"--teacher {teacher_path} changed since the run started (its sha256 is no longer "
                             f"{teacher_sha256}): restore that file, or start a new run")
    from classifier.emotion import EmotionModel, ModelError, softmax

    started = time.monotonic()
    try:
        logits = EmotionModel(teacher_path).logits(faces.images)
    except ModelError as error:
        raise data.DataError(f"--teacher {teacher_path}: {error}") from None
    except Exception as error:  # ONNX Runtime raises its own exception types, not exported
        raise data.DataError(f"--teacher {teacher_path}: failed to classify 48x48 grayscale faces: {error}") from None
    if logits.shape != (len(faces), len(EMOTIONS)):
        raise data.DataError(f"--teacher {teacher_path}: returned an array of shape {logits.shape} for "
                             f"{len(faces)} faces, where a teacher returns one score per FER2013 class "
                             f"({len(EMOTIONS)})")
    probabilities = softmax(logits / temperature).astype(np.float32)
    if not np.isfinite(probabilities).all():
        raise data.DataError(f"--teacher {teacher_path}: returned scores that give no valid probabilities "
                             f"at temperature {temperature}")
    log.info("Teacher %s: accuracy %.4f on the %d Training faces, mean top probability %.3f at temperature %g "
             "(%.0f s)", teacher_path, (logits.argmax(axis=1) == faces.labels).mean(), len(faces),
             probabilities.max(axis=1).mean(), temperature, time.monotonic() - started)
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".tmp.npz")
    np.savez(temporary, probabilities=probabilities, key=key)
    temporary.replace(cache)
    return probabilities


def _without_teacher(settings):
    options = " and ".join("--" + name.replace("_", "-") for name in settings)
    return data.DataError(f"{options} apply only to a run with a --teacher: drop them, or add one")


def _same_file(path, other):
    return pathlib.Path(path).resolve() == pathlib.Path(other).resolve()


def write_state(run_dir, state):
    temporary = run_dir / "run.json.tmp"
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(run_dir / "run.json")


def train(data_path, run_dir, recipe, fer_plus_path=None, resume=False, cache_dir=None, init_from=None,
          given_settings=None, teacher_path=None):
    """Train (or resume) a run in `run_dir`; return the run state with the best PublicTest figure.

    `init_from` starts a new run from the weights of a trained model of the same architecture:
    a `.keras` checkpoint, or an `.onnx` file from our export or ensemble (see `warm_start.rebuild`).
    `teacher_path` (an ONNX model) distils that model into this one: see `soft_targets`.
    A resumed run keeps its saved recipe and teacher; `given_settings` (the recipe options given
    on the command line) must agree with it.
    """
    run_dir = pathlib.Path(run_dir)
    state_path = run_dir / "run.json"
    teacher_settings = sorted(set(given_settings or {}) & {"teacher_weight", "teacher_temperature"})
    if teacher_settings and not teacher_path and not resume:
        raise _without_teacher(teacher_settings)
    if resume:
        if init_from:
            raise data.DataError("--resume continues a run from its own last epoch, and --init-from "
                                 "only starts a new run: pass one or the other")
        if not state_path.exists():
            raise data.DataError(f"nothing to resume: {state_path} not found")
        try:
            state = json.loads(state_path.read_text())
            recipe = Recipe(**state["recipe"])
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise data.DataError(f"{state_path}: not a readable run state ({error}); start a new run") from None
        differences = [f"--{name.replace('_', '-')} {value} (the run has {getattr(recipe, name)})"
                       for name, value in (given_settings or {}).items() if getattr(recipe, name) != value]
        if differences:
            raise data.DataError("--resume continues with the run's saved settings, which these options "
                                 "contradict: " + "; ".join(differences) + ". Drop them, or start a new run")
        saved_teacher = state.get("teacher")
        if teacher_path and (not saved_teacher or not _same_file(teacher_path, saved_teacher)):
            continued = f"the run's saved teacher ({saved_teacher})" if saved_teacher else "a run without a teacher"
            raise data.DataError(f"--resume continues {continued}, not --teacher {teacher_path}: "
                                 f"drop --teacher, or start a new run")
        if teacher_settings and not saved_teacher:
            raise _without_teacher(teacher_settings)
        saved_fer_plus = state.get("fer_plus")
        if fer_plus_path and (not saved_fer_plus or not _same_file(fer_plus_path, saved_fer_plus)):
            continued = (f"the run's saved FER+ votes ({saved_fer_plus})" if saved_fer_plus
                         else "a run without FER+ votes")
            raise data.DataError(f"--resume continues {continued}, not --fer-plus {fer_plus_path}: "
                                 f"drop --fer-plus, or start a new run")
        saved_sha256 = state.get("data_sha256")
        if saved_sha256 and pathlib.Path(data_path).is_file() and data.file_sha256(data_path) != saved_sha256:
            raise data.DataError(f"--data {data_path} is not the data this run was trained on (its sha256 differs "
                                 f"from the run's {saved_sha256[:16]}...): pass that file, or start a new run")
        fer_plus_path = saved_fer_plus
        teacher_path = saved_teacher
        if state["epochs_done"] - state["best_epoch"] >= recipe.patience_epochs:
            log.info("%s stopped early after epoch %d, %d epochs past its best (epoch %d): nothing to resume",
                     run_dir, state["epochs_done"], state["epochs_done"] - state["best_epoch"], state["best_epoch"])
            return state
        init_from = state.get("init_from")
        if not (run_dir / "last.keras").exists():
            if state["epochs_done"] > 0:
                raise data.DataError(f"{run_dir / 'last.keras'} not found: the model of the run's epoch "
                                     f"{state['epochs_done']}, which --resume continues from, is gone; "
                                     f"start a new run (with --init-from {run_dir / 'best.keras'} to keep its best)")
            if init_from:
                # Stopped before its first epoch ended: the run starts again from the same model.
                _check_start_model_unchanged(init_from, state.get("init_from_sha256"))
    else:
        if state_path.exists():
            raise data.DataError(f"{run_dir} already contains a run: pass --resume, or choose another --out")
        problems = recipe.problems()
        if problems:
            raise data.DataError("invalid training settings: " + "; ".join(problems))
        if init_from and not pathlib.Path(init_from).is_file():
            raise data.DataError(f"{init_from}: model to start from not found")
        teacher_sha256 = check_teacher(teacher_path) if teacher_path else None
        state = {"recipe": dataclasses.asdict(recipe), "data": str(data_path),
                 # Checked when the run resumes; an image-folder tree has no single file to check.
                 "data_sha256": data.file_sha256(data_path) if pathlib.Path(data_path).is_file() else None,
                 # Absolute, so that a run resumed from another folder finds the same votes.
                 "fer_plus": str(pathlib.Path(fer_plus_path).resolve()) if fer_plus_path else None,
                 # Absolute, so that a run resumed from another folder finds the same model.
                 "init_from": str(pathlib.Path(init_from).resolve()) if init_from else None,
                 # The file at that path may change later, as models/emotion.onnx does.
                 "init_from_sha256": data.file_sha256(init_from) if init_from else None,
                 # Absolute, so that a run resumed from another folder finds the same teacher.
                 "teacher": str(pathlib.Path(teacher_path).resolve()) if teacher_path else None,
                 "teacher_sha256": teacher_sha256,
                 "epochs_done": 0, "best_epoch": 0, "best_public_test_accuracy": 0.0}
    keras.utils.set_random_seed(recipe.seed + state["epochs_done"])

    faces = data.load(data_path, cache_dir=cache_dir)
    if fer_plus_path:
        faces.votes = data.load_fer_plus_votes(fer_plus_path, faces)
    train_faces, public_test = faces.split("Training"), faces.split("PublicTest")
    if len(train_faces) == 0 or len(public_test) == 0:
        raise data.DataError(f"{data_path}: training needs both Training and PublicTest faces "
                             f"(found {len(train_faces)} and {len(public_test)})")
    log.info("Training on %d faces, validating on %d PublicTest faces", len(train_faces), len(public_test))

    teacher = None
    if teacher_path and recipe.teacher_weight > 0:
        log.info("Distilling %s: its probabilities take %g of each target", teacher_path, recipe.teacher_weight)
        teacher = teacher_probabilities(teacher_path, state.get("teacher_sha256"), train_faces,
                                        recipe.teacher_temperature, run_dir)
    augmenter = augment.build_augmenter(augmentation_seed(recipe.seed, state["epochs_done"]),
                                        recipe.erasing_probability)
    mixer = None
    if recipe.mixup_alpha > 0 or recipe.cutmix_probability > 0:
        log.info("Mixing pairs of faces: mixup alpha %g, CutMix probability %g", recipe.mixup_alpha,
                 recipe.cutmix_probability)
        generator = tf.random.Generator.from_seed(recipe.seed + 7 + state["epochs_done"])

        def mixer(images, targets):
            return augment.mix_batch(images, targets, generator, recipe.mixup_alpha, recipe.cutmix_probability)
    train_set = make_dataset(train_faces, soft_targets(train_faces, recipe, teacher), recipe.batch_size,
                             augmenter, seed=recipe.seed + state["epochs_done"], mixer=mixer)
    public_test_targets = np.eye(len(EMOTIONS), dtype=np.float32)[public_test.labels]
    public_test_set = make_dataset(public_test, public_test_targets, 512)

    steps_per_epoch = int(np.ceil(len(train_faces) / recipe.batch_size))
    if resume and (run_dir / "last.keras").exists():
        try:
            model = keras.models.load_model(run_dir / "last.keras")
        except (OSError, ValueError) as error:
            raise data.DataError(f"{run_dir / 'last.keras'}: not readable ({str(error).splitlines()[0]}); start a "
                                 f"new run (with --init-from {run_dir / 'best.keras'} to keep its best)") from None
        log.info("Resuming %s after epoch %d", run_dir, state["epochs_done"])
    else:
        model = build_model(recipe, steps_per_epoch)
        log.info("Model %s with %d parameters", model.name, model.count_params())
        if init_from:
            start_from(model, init_from, train_faces, recipe.seed)
    # Made this late so that a new run that fails to start (bad data or start model) leaves no empty folder.
    run_dir.mkdir(parents=True, exist_ok=True)
    write_state(run_dir, state)

    callbacks = [
        Checkpointer(run_dir, state, recipe.keep_weights_from),
        ResumableEarlyStopping(state, monitor="val_accuracy", mode="max", patience=recipe.patience_epochs),
    ]
    # shuffle=False: the dataset shuffles itself (Keras ignores the flag for one, with a warning).
    model.fit(train_set, validation_data=public_test_set, epochs=recipe.epochs, shuffle=False,
              initial_epoch=state["epochs_done"], callbacks=callbacks, verbose=0)
    log.info("Best PublicTest accuracy %.4f at epoch %d; model in %s",
             state["best_public_test_accuracy"], state["best_epoch"], run_dir / "best.keras")
    return state
