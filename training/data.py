"""Load FER2013 faces from the canonical CSV (plain or gzip) or from an image-folder tree.

Both sources give the same `FaceSet`: 48x48 uint8 grayscale faces, integer labels in FER2013
order (0 angry ... 6 neutral) and the FER2013 `Usage` split of every face. FER+ annotator
votes (`fer2013new.csv`, same row order as the CSV) can be attached as soft targets.
"""

import csv
import dataclasses
import gzip
import hashlib
import io
import logging
import pathlib
import zipfile

import numpy as np
from PIL import Image, UnidentifiedImageError

from classifier.labels import EMOTIONS
from classifier.preprocess import FACE_SIZE

log = logging.getLogger(__name__)

SPLITS = ("Training", "PublicTest", "PrivateTest")

# Folder names used by the common image-folder exports of FER2013, mapped to Usage names.
# A lone "test" folder is taken as PrivateTest, the split every published accuracy is on.
FOLDER_SPLITS = {
    "train": "Training",
    "training": "Training",
    "val": "PublicTest",
    "valid": "PublicTest",
    "validation": "PublicTest",
    "publictest": "PublicTest",
    "test": "PrivateTest",
    "privatetest": "PrivateTest",
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}

# FER+ vote columns, in file order, and the FER2013 class each one maps to. Contempt,
# unknown and not-a-face have no FER2013 class, so they are dropped from the soft target.
FER_PLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                    "contempt", "unknown", "NF")
FER_PLUS_TO_FER2013 = {"neutral": 6, "happiness": 3, "surprise": 5, "sadness": 4, "anger": 0,
                       "disgust": 1, "fear": 2}

MAX_REPORTED_ERRORS = 10


class DataError(Exception):
    """A data set that cannot be used: missing, unreadable or without any valid face."""


@dataclasses.dataclass
class FaceSet:
    """Faces with their labels and FER2013 split.

    `votes`, when present, contains each face's FER+ vote distribution over the seven FER2013
    classes (rows sum to 1, or are all zero where FER+ has no usable vote).
    """

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, 0-6
    usage: np.ndarray  # (N,) str, one of SPLITS
    votes: np.ndarray | None = None  # (N, 7) float32
    # True when the faces are every row of a FER2013 CSV, in file order: FER+ files match them by row.
    in_csv_order: bool = False

    def __len__(self):
        return len(self.labels)

    def split(self, name):
        """Return the faces of one FER2013 split (`Training`, `PublicTest` or `PrivateTest`)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        mask = self.usage == name
        votes = None if self.votes is None else self.votes[mask]
        return FaceSet(self.images[mask], self.labels[mask], self.usage[mask], votes)


def sample_images(images, count, seed):
    """Return up to `count` of `images`, picked at random without repeats with `seed`, in their order."""
    chosen = np.random.default_rng(seed).choice(len(images), min(count, len(images)), replace=False)
    return images[np.sort(chosen)]


def load(path, cache_dir=None):
    """Load a FER2013 CSV (`.csv` or `.csv.gz`) or an image-folder tree into a `FaceSet`.

    With `cache_dir`, decoded CSV arrays are kept there as `.npz`, keyed by the file's sha256.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_dir():
        return load_folder(path)
    if cache_dir is None:
        return load_csv(path)

    digest = file_sha256(path)
    cache_path = pathlib.Path(cache_dir) / f"fer2013-{digest[:16]}.npz"
    cached = _read_cache(cache_path)
    if cached is not None:
        return cached
    faces = load_csv(path)
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and then renamed, so that an interrupted write leaves no half file behind.
        temporary = cache_path.with_name(cache_path.name + ".tmp")
        with open(temporary, "wb") as file:
            np.savez(file, images=faces.images, labels=faces.labels, usage=faces.usage,
                     in_csv_order=faces.in_csv_order)
        temporary.replace(cache_path)
    except OSError as error:
        log.warning("%s: cannot write the decoded faces (%s); the CSV is decoded again next time", cache_path, error)
    return faces


def _read_cache(cache_path):
    """Return the `FaceSet` kept at `cache_path`, or None when there is none or it cannot be used."""
    if not cache_path.exists():
        return None
    try:
        with np.load(cache_path) as cached:
            if "in_csv_order" not in cached.files:
                return None  # written by an older version, which did not record it
            return FaceSet(cached["images"], cached["labels"], cached["usage"],
                           in_csv_order=bool(cached["in_csv_order"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        log.warning("%s: unreadable (%s); decoding the CSV again", cache_path, error)
        return None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path):
    with open(path, "rb") as file:
        is_gzip = file.read(2) == b"\x1f\x8b"
    if is_gzip:
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def load_csv(path):
    """Parse the canonical `emotion,pixels,Usage` CSV; bad rows are skipped and reported."""
    images, labels, usage, errors = [], [], [], []
    try:
        with _open_text(path) as file:
            reader = csv.DictReader(file)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing CSV column(s) {', '.join(sorted(missing))}; "
                                "expected the header emotion,pixels,Usage")
            # Row 1 is the header, so the first face is on row 2, as a spreadsheet numbers it.
            for row_number, row in enumerate(reader, start=2):
                try:
                    image, label, split = _parse_row(row)
                except (ValueError, OverflowError) as error:
                    errors.append(f"row {row_number}: {error}")
                    continue
                images.append(image)
                labels.append(label)
                usage.append(split)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read the CSV ({error})") from error

    _report_skipped(path, errors)
    if not images:
        raise DataError(f"{path}: no valid face rows")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage), in_csv_order=not errors)


def _parse_row(row):
    label = int(row["emotion"])
    if not 0 <= label < len(EMOTIONS):
        raise ValueError(f"emotion {label} is outside 0-{len(EMOTIONS) - 1}")
    split = row["Usage"]
    if split not in SPLITS:
        raise ValueError(f"Usage {split!r} is not one of {', '.join(SPLITS)}")
    pixels = np.array(row["pixels"].split(), dtype=np.int64)
    if pixels.size != FACE_SIZE * FACE_SIZE:
        raise ValueError(f"{pixels.size} pixel values, expected {FACE_SIZE * FACE_SIZE}")
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("pixel values outside 0-255")
    return pixels.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE), label, split


def load_folder(root):
    """Read `<root>/<split>/<emotion>/*.png|jpg`; unreadable files are skipped and reported."""
    images, labels, usage, errors = [], [], [], []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = FOLDER_SPLITS.get(split_dir.name.lower())
        if split is None:
            log.warning("%s: folder name is not a known split, skipped", split_dir)
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            name = class_dir.name.lower()
            if name not in EMOTIONS:
                log.warning("%s: folder name is not one of %s, skipped", class_dir, ", ".join(EMOTIONS))
                continue
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    images.append(_read_face_file(file))
                except (OSError, UnidentifiedImageError, ValueError) as error:
                    errors.append(f"{file}: {error}")
                    continue
                labels.append(EMOTIONS.index(name))
                usage.append(split)

    _report_skipped(root, errors)
    if not images:
        raise DataError(f"{root}: no readable face images in <split>/<emotion>/ folders "
                        f"(splits: {', '.join(sorted(FOLDER_SPLITS))}; emotions: {', '.join(EMOTIONS)})")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage))


def _read_face_file(path):
    with Image.open(path) as image:
        image = image.convert("L")
        if image.size != (FACE_SIZE, FACE_SIZE):
            image = image.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _report_skipped(source, errors):
    if not errors:
        return
    shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
    more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
    log.warning("%s: skipped %d bad item(s): %s%s", source, len(errors), shown, more)


def load_fer_plus_votes(path, faces):
    """Read FER+ votes as (N, 7) distributions over FER2013 classes, one per face of `faces`.

    Rows with no votes for any of the seven classes come back all zero; callers fall back
    to the FER2013 label there.
    """
    counts = _read_fer_plus_counts(path, faces)
    votes = np.zeros((len(counts), len(EMOTIONS)), dtype=np.float32)
    for column, target in FER_PLUS_TO_FER2013.items():
        votes[:, target] = counts[:, FER_PLUS_COLUMNS.index(column)]
    totals = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, totals, out=np.zeros_like(votes), where=totals > 0)


def load_fer_plus_majority(path, faces):
    """Read the FER+ majority of each face of `faces` as a FER2013 class index.

    The majority is the one column with the most votes of all ten, so a face that most annotators
    called contempt, unknown or not a face has none. Such rows, and rows where the most votes are
    tied or there are no votes, come back as -1.
    """
    counts = _read_fer_plus_counts(path, faces)
    winner = counts.argmax(axis=1)
    top_two = np.sort(counts, axis=1)[:, -2:]
    single = top_two[:, 1] > top_two[:, 0]
    to_fer2013 = np.array([FER_PLUS_TO_FER2013.get(column, -1) for column in FER_PLUS_COLUMNS])
    return np.where(single, to_fer2013[winner], -1)


def _read_fer_plus_counts(path, faces):
    """Read the FER+ vote counts of `faces` as an (N, 10) array with the columns of `FER_PLUS_COLUMNS`."""
    if not faces.in_csv_order:
        # FER+ rows carry no image or id, only their position, so any other order pairs votes with the wrong faces.
        raise DataError(f"{path}: FER+ votes are matched to faces by their row in the FER2013 CSV, so they need "
                        "that CSV as the data, with every row readable (not an image-folder tree)")
    expected_rows = len(faces)
    counts = np.zeros((expected_rows, len(FER_PLUS_COLUMNS)), dtype=np.float32)
    try:
        with _open_text(path) as file:
            reader = csv.DictReader(file)
            missing = set(FER_PLUS_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing FER+ column(s) {', '.join(sorted(missing))}")
            count = 0
            for index, row in enumerate(reader):
                if index >= expected_rows:
                    raise DataError(f"{path}: more rows than the {expected_rows} faces of the FER2013 CSV")
                counts[index] = [float(row[column] or 0) for column in FER_PLUS_COLUMNS]
                count = index + 1
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise DataError(f"{path}: cannot read the FER+ votes ({error})") from error
    if count != expected_rows:
        raise DataError(f"{path}: {count} rows, but the FER2013 CSV has {expected_rows}")
    return counts
