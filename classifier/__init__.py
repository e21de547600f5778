"""Find the faces in a photo, read each one's emotion and draw the result.

    reader = EmotionReader()                 # loads the shipped model and face detector
    analysis = reader.read_bytes(photo_bytes)
    for face in analysis.faces:
        print(face.box, face.label, face.confidence)
    jpeg = annotate(analysis.image, analysis.faces)
"""

from classifier.analyze import Analysis, EmotionReader, FaceEmotion
from classifier.annotate import annotate
from classifier.decode import decode_image
from classifier.detect import Face, create_detector
from classifier.emotion import DEFAULT_MODEL, EmotionModel, ModelError
from classifier.errors import (EmptyFileError, FileTooLargeError, ImageError, ImageTooLargeError,
                               NotAnImageError, TruncatedImageError, UnsupportedFormatError)
from classifier.labels import EMOTIONS

__all__ = [
    "Analysis", "DEFAULT_MODEL", "EMOTIONS", "EmotionModel", "EmotionReader", "EmptyFileError",
    "Face", "FaceEmotion", "ModelError", "FileTooLargeError", "ImageError", "ImageTooLargeError",
    "NotAnImageError", "TruncatedImageError", "UnsupportedFormatError", "annotate",
    "create_detector", "decode_image",
]
