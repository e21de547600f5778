"""Read the emotions on the faces in photos: `python -m classifier PHOTO... [--out DIR] [--json]`.

Writes `<name>.emotions.jpg` per photo into --out (default: the current folder). With --json,
prints one JSON object per photo per line instead of a summary. Exits with 1 if any photo
could not be read, 2 on a usage error.
"""

import argparse
import json
import pathlib
import sys

from classifier.analyze import EmotionReader
from classifier.annotate import annotate
from classifier.decode import MAX_BYTES, MEGABYTE
from classifier.detect import DEFAULT_MIN_SCORE
from classifier.emotion import DEFAULT_MODEL, ModelError
from classifier.errors import FileTooLargeError, ImageError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="image files to analyse")
    parser.add_argument("--out", type=pathlib.Path, help="folder for the annotated images (default: current folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per photo")
    parser.add_argument("--no-images", action="store_true", help="do not write annotated images")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ONNX emotion model (default: the shipped one)")
    parser.add_argument("--detector", default="auto", choices=("auto", "yunet", "mtcnn"),
                        help="face detector (default: %(default)s, YuNet where installed)")
    parser.add_argument("--min-score", type=_score, default=DEFAULT_MIN_SCORE,
                        help="smallest detector score counted as a face, 0-1 (default: %(default)s)")
    args = parser.parse_args(argv)

    out_dir = args.out or pathlib.Path.cwd()
    try:
        if not args.no_images:
            out_dir.mkdir(parents=True, exist_ok=True)
        reader = EmotionReader(args.model, detector=args.detector, min_score=args.min_score)
    except (ModelError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot create the output folder {out_dir}: {error.strerror}", file=sys.stderr)
        return 2

    failures = 0
    used_names = set()
    for photo in args.photos:
        record = {"path": photo}
        try:
            analysis = reader.read_bytes(_read_photo(photo))
        except ImageError as error:
            failures += 1
            record.update(error=error.kind, message=str(error))
        except OSError as error:
            failures += 1
            record.update(error="unreadable_file", message=f"Cannot read the file: {error.strerror}.")
        else:
            record.update(width=analysis.width, height=analysis.height,
                          faces=[face.to_dict() for face in analysis.faces])
            if not args.no_images:
                target = _unique_target(out_dir, pathlib.Path(photo).stem, used_names)
                try:
                    target.write_bytes(annotate(analysis.image, analysis.faces))
                    record["annotated"] = str(target)
                except OSError as error:
                    failures += 1
                    record.update(error="unwritable_output", message=f"Cannot write {target}: {error.strerror}.")
        _print_record(record, args.json)
    return 1 if failures else 0


def _read_photo(path):
    """Return the bytes of the file at `path`, reading no more than the decoder's limit allows."""
    with open(path, "rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) <= MAX_BYTES:
        return data
    # A device such as /dev/zero has no size, and reading it would never end.
    size = pathlib.Path(path).stat().st_size
    if size > MAX_BYTES:
        raise FileTooLargeError(f"The file is {size / MEGABYTE:.1f} MB; the limit is {MAX_BYTES / MEGABYTE:g} MB.")
    raise FileTooLargeError(f"The file is over the {MAX_BYTES / MEGABYTE:g} MB limit.")


def _score(text):
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text} is not a score between 0 and 1")
    return value


def _unique_target(out_dir, stem, used_names):
    """Return `<stem>.emotions.jpg`, numbered when photos of the same name share one run."""
    name = f"{stem}.emotions.jpg"
    number = 2
    while name in used_names:
        name = f"{stem}-{number}.emotions.jpg"
        number += 1
    used_names.add(name)
    return out_dir / name


def _print_record(record, as_json):
    if as_json:
        print(json.dumps(record), flush=True)
    elif "error" in record:
        print(f"{record['path']}: {record['message']}", file=sys.stderr)
    else:
        labels = ", ".join(f"{face['label']} {face['probabilities'][face['label']]:.0%}" for face in record["faces"])
        print(f"{record['path']}: {len(record['faces'])} face(s){': ' + labels if labels else ''}")


if __name__ == "__main__":
    sys.exit(main())
