"""The whole path from photo bytes to faces with emotions: decode, detect, crop, classify."""

import dataclasses

import numpy as np

from classifier import preprocess
from classifier.decode import MAX_BYTES, MAX_PIXELS, decode_image
from classifier.detect import DEFAULT_MIN_SCORE, create_detector
from classifier.emotion import DEFAULT_MODEL, EmotionModel
from classifier.labels import EMOTIONS


@dataclasses.dataclass(frozen=True)
class FaceEmotion:
    """One face in a photo and its predicted emotion."""

    box: tuple[int, int, int, int]  # (x, y, width, height) in pixels of the upright photo
    score: float  # detector confidence, 0-1
    label: str  # the most probable of EMOTIONS
    confidence: float  # calibrated probability of `label`
    probabilities: dict[str, float]  # every class, in EMOTIONS order
    landmarks: tuple[tuple[int, int], ...] | None = None

    def to_dict(self):
        return {"box": list(self.box), "score": round(self.score, 4), "label": self.label,
                "probabilities": {name: round(p, 4) for name, p in self.probabilities.items()}}


@dataclasses.dataclass(frozen=True)
class Analysis:
    """A decoded photo and the faces found in it, in reading order."""

    image: np.ndarray  # (H, W, 3) RGB uint8, upright
    faces: list[FaceEmotion]

    @property
    def width(self):
        return self.image.shape[1]

    @property
    def height(self):
        return self.image.shape[0]


class EmotionReader:
    """Find every face in a photo and predict its emotion. Load once, call from any thread.

    ONNX Runtime sessions and the YuNet detector keep no per-call state, so one reader can
    serve several worker threads at once.
    """

    def __init__(self, model_path=DEFAULT_MODEL, detector="auto", min_score=DEFAULT_MIN_SCORE,
                 threads=None, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
        self.model = EmotionModel(model_path, threads=threads)
        self.detector = create_detector(detector, min_score=min_score)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def read_bytes(self, data):
        """Decode photo bytes and analyse them; raises `ImageError` for unusable files."""
        image = decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        return Analysis(image, self.read_image(image))

    def read_image(self, rgb):
        """Return a `FaceEmotion` for every face in an (H, W, 3) RGB uint8 image.

        Raises ValueError for another shape or type, such as floats in 0-1 or an image with no pixels.
        """
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
            raise ValueError(f"expected an (H, W, 3) RGB uint8 image with pixels, got shape {rgb.shape} "
                             f"of {rgb.dtype}; decode files with read_bytes, or convert with "
                             "(image * 255).astype(np.uint8) or np.dstack([gray] * 3)")
        faces = self.detector.detect(rgb)
        if not faces:
            return []
        gray = preprocess.to_grayscale(rgb)
        crops = np.stack([preprocess.crop_face(gray, face.box) for face in faces])
        probabilities = self.model.predict(crops)
        results = []
        for face, row in zip(faces, probabilities):
            best = int(np.argmax(row))
            results.append(FaceEmotion(
                box=face.box, score=face.score, label=EMOTIONS[best], confidence=float(row[best]),
                probabilities={name: float(p) for name, p in zip(EMOTIONS, row)},
                landmarks=face.landmarks))
        return results
