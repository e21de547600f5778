"""Command line of the training package: `python -m training {train,average,evaluate,export,ensemble} --help`."""

import argparse
import dataclasses
import logging
import os
import sys

# Keep TensorFlow's C++ info logs out of the progress lines; set before it is imported.
# NOTE: TensorFlow 2.21 prints its "oneDNN custom operations are on" line regardless.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CACHE = ".cache"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_average(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_ensemble(commands)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # tf2onnx logs every optimisation pass at INFO.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    from classifier.emotion import ModelError
    from training import data, quantize

    try:
        return args.run(args)
    except (data.DataError, quantize.QuantizationError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _pixels(text):
    """Parse a number of pixels for --shift-pixels: an integer, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, 0 or more, not {text!r}")
    return value


def _add_train(commands):
    from training.recipe import Recipe

    parser = commands.add_parser("train", help="train a model on FER2013 (Training split), "
                                 "choosing the best epoch on PublicTest")
    parser.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image-folder tree")
    parser.add_argument("--fer-plus", help="FER+ votes CSV (fer2013new.csv) to mix into the targets")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and history")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch, "
                        "with the settings saved in its run.json (a recipe option that differs is an error)")
    parser.add_argument("--init-from", help="start a new run from a trained model of the same architecture: "
                        ".keras, or .onnx from our export or ensemble (its --architecture net; 8-bit weights "
                        "are turned back into float), such as models/emotion-float.onnx")
    parser.add_argument("--teacher", help="distil this trained .onnx model (an export or an ensemble) into the "
                        "new one: its probabilities on the Training faces, computed once and kept in the run "
                        "folder, are mixed into the targets")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="folder for decoded CSV arrays (default: %(default)s)")
    defaults = Recipe()
    for field in dataclasses.fields(Recipe):
        flag = "--" + field.name.replace("_", "-")
        # No argparse default, so that --resume can tell the options given from the defaults.
        parser.add_argument(flag, type=type(getattr(defaults, field.name)),
                            help=f"{field.metadata['help']} (default: {getattr(defaults, field.name)})")
    parser.set_defaults(run=_run_train)


def _run_train(args):
    from training.train import Recipe, train

    given_settings = {field.name: getattr(args, field.name) for field in dataclasses.fields(Recipe)
                      if getattr(args, field.name) is not None}
    train(args.data, args.out, Recipe(**given_settings), fer_plus_path=args.fer_plus, resume=args.resume,
          cache_dir=args.cache, init_from=args.init_from, given_settings=given_settings,
          teacher_path=args.teacher)
    return 0


def _add_average(commands):
    from training.models import ARCHITECTURES

    parser = commands.add_parser("average", help="average the weights of several epochs of a run "
                                 "(such as its weights/epoch-*.npz files) into one .keras model")
    parser.add_argument("--weights", nargs="+", required=True,
                        help=".npz files from train --keep-weights-from, .weights.h5 files, .keras models or "
                        ".onnx files (the --architecture member of an ensemble, even an 8-bit one, such as "
                        "models/emotion.onnx), all of one architecture; with one, only its batch-norm statistics "
                        "are measured again")
    parser.add_argument("--architecture", default="vgg32", choices=sorted(ARCHITECTURES),
                        help="architecture the weights were trained with (default: %(default)s)")
    parser.add_argument("--data", required=True, help="FER2013 data; batch-norm statistics are measured "
                        "on its Training faces")
    parser.add_argument("--out", required=True, help=".keras file to write")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for picking the Training faces (default: %(default)s)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="folder for decoded CSV arrays (default: %(default)s)")
    parser.set_defaults(run=_run_average)


def _run_average(args):
    import pathlib

    from training import data
    from training.average import average, sample_images

    for path in args.weights:
        if not pathlib.Path(path).is_file():
            raise data.DataError(f"weights not found: {path}")
    if args.seed < 0:
        raise data.DataError(f"--seed {args.seed}: the seed must be 0 or more")
    out = pathlib.Path(args.out)
    if out.suffix != ".keras":
        raise data.DataError(f"--out {out}: the averaged model is saved as a .keras file, so name it *.keras")
    train_faces = data.load(args.data, cache_dir=args.cache).split("Training")
    if len(train_faces) == 0:
        raise data.DataError(f"{args.data}: no Training faces to measure batch-norm statistics on")
    try:
        model = average(args.weights, args.architecture, sample_images(train_faces.images, args.seed))
    except ValueError as error:
        raise data.DataError(str(error)) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save(out)
    except OSError as error:
        raise data.DataError(f"failed to write {out}: {error}") from None
    print(out)
    return 0


def _add_evaluate(commands):
    parser = commands.add_parser("evaluate", help="print accuracy, macro F1 and per-class recall "
                                 "as one JSON line and write a confusion-matrix PNG")
    parser.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image-folder tree")
    parser.add_argument("--split", default="PrivateTest", choices=("Training", "PublicTest", "PrivateTest"),
                        help="split to evaluate on (default: %(default)s)")
    parser.add_argument("--model", help="an .onnx or .keras model (default: the model the classifier uses); "
                        "a .keras model gets its temperature fitted on PublicTest, as export does")
    parser.add_argument("--fer-plus", help="FER+ votes CSV (fer2013new.csv): also report FER+ majority-vote accuracy")
    parser.add_argument("--no-flip", action="store_true", help="do not average with mirrored faces")
    parser.add_argument("--shift-pixels", type=_pixels, help="also average over faces shifted this many pixels "
                        "(default: the model's setting, or 0 for a .keras model)")
    parser.add_argument("--confusion-matrix", default="confusion_matrix.png",
                        help="where to write the confusion-matrix PNG (default: %(default)s)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="folder for decoded CSV arrays (default: %(default)s)")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args):
    import json
    import pathlib
    import tempfile

    from training import data
    from training.evaluate import evaluate, load_model, save_confusion_matrix

    try:  # before the evaluation, which takes minutes, rather than after it
        pathlib.Path(args.confusion_matrix).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise data.DataError(f"--confusion-matrix {args.confusion_matrix}: cannot create its folder "
                             f"({error})") from None
    faces = data.load(args.data, cache_dir=args.cache)
    majority = data.load_fer_plus_majority(args.fer_plus, faces) if args.fer_plus else None
    mask = faces.usage == args.split
    split = faces.split(args.split)
    if len(split) == 0:
        raise data.DataError(f"{args.data}: no {args.split} faces")
    with tempfile.TemporaryDirectory() as scratch:  # where a .keras model is exported first
        model = load_model(args.model, flip_average=False if args.no_flip else None,
                           shift_pixels=args.shift_pixels, scratch_dir=scratch)
        if str(args.model).endswith(".keras"):
            # Fitted on PublicTest as `export` does, so the calibration error matches the exported model.
            model.temperature = _fit_temperature(model, faces)
        result, matrix, _ = evaluate(model, split, None if majority is None else majority[mask])
    if args.model:
        result["model"] = str(args.model)  # not the scratch export of a .keras model
    result["split"] = args.split
    try:
        save_confusion_matrix(matrix, args.confusion_matrix,
                              f"{args.split}: accuracy {result['accuracy']:.4f}, n = {result['n']}")
    except (OSError, ValueError) as error:  # matplotlib raises ValueError for a file suffix it cannot write
        print(json.dumps(result), flush=True)  # the figures are not lost
        raise data.DataError(f"--confusion-matrix {args.confusion_matrix}: cannot write it ({error})") from None
    result["confusion_matrix"] = str(args.confusion_matrix)
    print(json.dumps(result), flush=True)
    return 0


def _add_export(commands):
    parser = commands.add_parser("export", help="write a trained .keras model as the ONNX file the "
                                 "classifier loads, with a temperature fitted on PublicTest")
    parser.add_argument("--model", required=True, help="trained .keras model, such as a run's best.keras")
    _add_output_options(parser)
    parser.set_defaults(run=_run_export)


def _add_output_options(parser):
    """Add the options that `export` and `ensemble` share: data, output file, test-time views."""
    parser.add_argument("--data", required=True, help="FER2013 data; its PublicTest split calibrates the temperature")
    parser.add_argument("--out", default="models/emotion.onnx", help="ONNX file to write (default: %(default)s)")
    parser.add_argument("--no-flip", action="store_true", help="do not average with mirrored faces at inference")
    parser.add_argument("--shift-pixels", type=_pixels, default=0,
                        help="at inference, also average over faces shifted this many pixels (default: %(default)s)")
    parser.add_argument("--int8", action="store_true",
                        help="quantize the weights and activations to 8-bit integers, calibrated on 512 Training faces")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="folder for decoded CSV arrays (default: %(default)s)")


def _run_export(args):
    import pathlib
    import tempfile

    from training.export import export

    with tempfile.TemporaryDirectory() as scratch:
        exported = export(args.model, pathlib.Path(scratch) / "exported.onnx")
        _write_output(exported, args, extra={"source": str(args.model)})
    print(args.out)
    return 0


def _write_output(onnx_path, args, extra):
    """Quantize `onnx_path` if --int8 is set, fit its temperature on PublicTest, and copy it with its settings to --out.

    `onnx_path` lies in a scratch folder, so a failure leaves --out as it was.
    """
    import pathlib
    import shutil

    from classifier.emotion import EmotionModel
    from training import data, quantize
    from training.export import write_settings

    faces = data.load(args.data, cache_dir=args.cache)
    flip_average = not args.no_flip
    if args.int8:
        int8_path = onnx_path.with_name(f"{onnx_path.stem}-int8.onnx")
        calibration = quantize.calibration_faces(faces.split("Training").images)
        quantize.quantize(onnx_path, int8_path, calibration)
        onnx_path = int8_path
        extra = {**extra, "weights": "int8"}

    model = EmotionModel(onnx_path, flip_average=flip_average, shift_pixels=args.shift_pixels)
    model.temperature = 1.0
    temperature = _fit_temperature(model, faces)
    write_settings(onnx_path, temperature, flip_average, args.shift_pixels, extra)

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out)
    shutil.copyfile(onnx_path.with_suffix(".json"), out.with_suffix(".json"))


def _fit_temperature(model, faces):
    """Return the temperature that calibrates `model` (run with temperature 1) on the PublicTest split of `faces`."""
    from training import data, metrics

    public_test = faces.split("PublicTest")
    if len(public_test) == 0:
        raise data.DataError("the data has no PublicTest faces to fit the temperature on")
    logits = model.logits(public_test.images)
    temperature = metrics.fit_temperature(public_test.labels, logits)
    accuracy = float((logits.argmax(axis=1) == public_test.labels).mean())
    logging.getLogger(__name__).info("PublicTest accuracy %.4f; temperature fitted on %d faces: %.3f",
                                     accuracy, len(public_test), temperature)
    return temperature


def _add_ensemble(commands):
    from training.ensemble import AVERAGES

    parser = commands.add_parser("ensemble", help="combine several models into one ONNX file that averages "
                                 "their predictions, with a temperature fitted on PublicTest")
    parser.add_argument("--members", nargs="+", required=True,
                        help="two or more .onnx or .keras models (a .keras model is exported first)")
    parser.add_argument("--average", choices=AVERAGES, default="probabilities",
                        help="average the members' softmax probabilities or their logits (default: %(default)s)")
    _add_output_options(parser)
    parser.set_defaults(run=_run_ensemble)


def _run_ensemble(args):
    import pathlib
    import tempfile

    from training import data, ensemble
    from training.export import export

    for member in args.members:
        if not pathlib.Path(member).is_file():
            raise data.DataError(f"member model not found: {member}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        onnx_members = []
        for index, member in enumerate(map(pathlib.Path, args.members)):
            if member.suffix == ".keras":
                member = export(member, scratch / f"member{index}.onnx")
            onnx_members.append(member)
        try:
            # Written to scratch first, because --out may name one of the members.
            combined = ensemble.write(onnx_members, scratch / "combined.onnx", args.average)
        except ensemble.EnsembleError as error:
            raise data.DataError(str(error)) from None
        _write_output(combined, args, extra={"source": [str(member) for member in args.members],
                                             "average": args.average})
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
