"""Find faces in an RGB photo, behind one small interface with two interchangeable detectors.

- `YuNetDetector` (default): libfacedetection's YuNet from the `yuface` wheel, weights
  compiled into the wheel. Fast, five landmarks, small faces in group photos. Wheels exist
  only for CPython 3.11 and older on x86-64 Linux and Windows.
- `MtcnnDetector` (fallback): the `mtcnn` package, pure Python on TensorFlow with its weights
  in the wheel, so it installs wherever TensorFlow does. Several times slower.
"""

import dataclasses
import logging
import math
import os

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MIN_SCORE = 0.8

# Photos at least this many times longer than wide (panoramas, strips) are searched in tiles,
# when their short side is big enough to hold a face and the tiles stay few.
STRIP_MIN_TILES = 3
STRIP_MIN_SIDE = 48
STRIP_MAX_TILES = 40
# Pixels YuNet may see across all of a strip's tiles (full-size pyramid level): four times a
# 960x960 photo's. A 20000x500 strip then took 0.75 s instead of 1.85 s (a photo: 0.1 s).
STRIP_PIXEL_BUDGET = 4 * 960 * 960


@dataclasses.dataclass(frozen=True)
class Face:
    """A detected face: `box` is (x, y, width, height) in pixels of the upright photo."""

    box: tuple[int, int, int, int]
    score: float
    # Right eye, left eye, nose tip, right and left mouth corners, as (x, y) pixels.
    landmarks: tuple[tuple[int, int], ...] | None = None


class YuNetDetector:
    """YuNet run on an image pyramid, so that both small faces and faces filling the photo are found.

    YuNet works best on images up to about 960 px and misses faces that fill most of its
    input. So the photo is scaled to `max_side` px and also run at half and quarter size, and
    the smaller copies contribute only the large faces that the full-size pass misses.
    """

    name = "yunet"

    def __init__(self, min_score=DEFAULT_MIN_SCORE, max_side=960, min_side=640):
        # yuface runs on its own OpenMP library, whose threads by default spin while waiting. When
        # other work keeps the cores busy, detection then took 3-10 times longer and varied widely
        # (a 2880x960 photo 0.4-1.0 s, against 0.15-0.23 s with passive waiting). The library reads
        # this when yuface is first imported; a value already set is kept.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import yuface

        self._detect = yuface.c_detect
        self.min_score = min_score
        self.max_side = max_side
        self.min_side = min_side
        # The library sets up its weights on its first call, in global variables (`param_initialized`,
        # `g_pFilters`) with no lock in sight, and it runs without the GIL. Making that call here, before
        # worker threads share this detector, keeps two first calls from racing.
        self._detect(np.zeros((64, 64, 3), np.uint8))

    def detect(self, rgb):
        height, width = rgb.shape[:2]
        shortest, longest = min(height, width), max(height, width)
        tiles = -(-longest // shortest) if shortest else 0
        if tiles < STRIP_MIN_TILES or shortest < STRIP_MIN_SIDE or tiles > STRIP_MAX_TILES:
            return _non_max_suppression(self._detect_pyramid(rgb))

        # A long strip scaled to max_side would shrink its faces to a few pixels, so detect in
        # overlapping tiles twice as long as the strip is wide. Consecutive tiles overlap by the
        # strip's width, which no face exceeds, so every face lies whole inside one tile.
        starts = range(0, max(1, longest - shortest), shortest)
        # Each tile is 2 x 1 in shape; shrink tiles (or enlarge them less) to keep within the budget.
        budget_side = int(math.sqrt(2 * STRIP_PIXEL_BUDGET / len(starts)))
        tile_side = min(self.max_side, max(self.min_side, 2 * shortest), budget_side)
        faces = []
        for start in starts:
            if width >= height:
                tile, offset = rgb[:, start:start + 2 * shortest], (start, 0)
            else:
                tile, offset = rgb[start:start + 2 * shortest], (0, start)
            for face in self._detect_pyramid(np.ascontiguousarray(tile), max_side=tile_side, min_side=tile_side):
                x, y, w, h = face.box
                points = tuple((px + offset[0], py + offset[1]) for px, py in face.landmarks)
                faces.append(Face((x + offset[0], y + offset[1], w, h), face.score, points))
        return _non_max_suppression(faces)

    def _detect_pyramid(self, rgb, max_side=None, min_side=None):
        height, width = rgb.shape[:2]
        longest = max(height, width)
        max_side, min_side = max_side or self.max_side, min_side or self.min_side
        # Small photos are enlarged to min_side so that small faces in them are found too.
        base_scale = max_side / longest if longest > max_side else max(1.0, min_side / longest)
        faces = []
        # (scale relative to the base image, smallest face side kept, in base pixels)
        for pyramid_scale, min_face_side in ((1.0, 0), (0.5, 240), (0.25, 480)):
            scale = base_scale * pyramid_scale
            if pyramid_scale < 1 and longest * scale < 64:
                break
            # Converted after scaling, so a large photo is never copied whole.
            resized = cv2.cvtColor(_resize(rgb, scale), cv2.COLOR_RGB2BGR)
            for row in self._detect(resized):
                score = float(row[0]) / 100
                if score < self.min_score:
                    continue
                x, y, w, h = (float(v) / scale for v in row[1:5])
                if max(w, h) * base_scale < min_face_side:
                    continue
                points = tuple((int(round(row[5 + 2 * i] / scale)), int(round(row[6 + 2 * i] / scale)))
                               for i in range(5))
                faces.append(Face(_clip_box(x, y, w, h, width, height), score, points))
        return faces


class MtcnnDetector:
    """MTCNN from the `mtcnn` package (TensorFlow), for platforms without `yuface` wheels."""

    name = "mtcnn"

    def __init__(self, min_score=DEFAULT_MIN_SCORE, max_side=1280):
        from mtcnn import MTCNN

        self._mtcnn = MTCNN()
        self.min_score = min_score
        self.max_side = max_side

    def detect(self, rgb):
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        faces = []
        for result in self._mtcnn.detect_faces(_resize(rgb, scale)):
            if result["confidence"] < self.min_score:
                continue
            x, y, w, h = (v / scale for v in result["box"])
            points = result.get("keypoints", {})
            order = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
            landmarks = tuple((int(points[k][0] / scale), int(points[k][1] / scale)) for k in order) \
                if all(k in points for k in order) else None
            faces.append(Face(_clip_box(x, y, w, h, width, height), float(result["confidence"]), landmarks))
        return _non_max_suppression(faces)


DETECTORS = {"yunet": YuNetDetector, "mtcnn": MtcnnDetector}


def create_detector(name="auto", min_score=DEFAULT_MIN_SCORE):
    """Create a detector by name; "auto" takes YuNet and falls back to MTCNN where `yuface` is missing."""
    if name == "auto":
        try:
            return YuNetDetector(min_score=min_score)
        except ImportError:
            log.warning("yuface is not installed for this platform; using the slower MTCNN detector")
        try:
            return MtcnnDetector(min_score=min_score)
        except ImportError:
            raise ImportError("No face detector is installed: yuface has wheels only for CPython 3.11 and "
                              "older on x86-64 Linux and Windows. Install the MTCNN fallback with "
                              "pip install -e '.[mtcnn]'") from None
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}: choose auto, {', '.join(DETECTORS)}")
    return DETECTORS[name](min_score=min_score)


def _resize(image, scale):
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def _clip_box(x, y, w, h, width, height):
    left, top = max(0, int(round(x))), max(0, int(round(y)))
    right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return left, top, max(1, right - left), max(1, bottom - top)


def box_iou(a, b):
    """Intersection over union of two (x, y, width, height) boxes."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    intersection = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0 else 0.0


def _non_max_suppression(faces, max_iou=0.4):
    kept = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(box_iou(face.box, other.box) <= max_iou for other in kept):
            kept.append(face)
    return in_reading_order(kept)


def in_reading_order(faces):
    """Sort faces top to bottom in rows one typical face height tall, then left to right."""
    if not faces:
        return []
    row_height = max(1.0, float(np.median([face.box[3] for face in faces])))
    return sorted(faces, key=lambda f: (int((f.box[1] + f.box[3] / 2) // row_height), f.box[0]))
