"""The face crop the emotion model expects, shared by training and inference.

FER2013 faces are 48x48 grayscale crops that show the whole face from the forehead to the
chin, with a little hair and background. Detector boxes are tighter, so a crop takes a square
around the box, `FACE_MARGIN` times its longer side, padding with edge pixels where the square
leaves the photo. Pixel values stay in 0-255: the model scales them itself.
"""

import cv2
import numpy as np

FACE_SIZE = 48
FACE_MARGIN = 1.2


def to_grayscale(rgb):
    """Convert an (H, W, 3) RGB uint8 image to (H, W) grayscale with the ITU-R 601 weights."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def crop_face(gray, box, margin=FACE_MARGIN):
    """Cut a face out of a grayscale photo as a (48, 48) uint8 array, as the model was trained on."""
    x, y, width, height = box
    side = max(1, int(round(max(width, height) * margin)))
    center_x, center_y = x + width / 2, y + height / 2
    left, top = int(round(center_x - side / 2)), int(round(center_y - side / 2))

    image_height, image_width = gray.shape[:2]
    pad_left, pad_top = max(0, -left), max(0, -top)
    pad_right = max(0, left + side - image_width)
    pad_bottom = max(0, top + side - image_height)
    crop = gray[max(0, top):min(image_height, top + side), max(0, left):min(image_width, left + side)]
    if pad_left or pad_top or pad_right or pad_bottom:
        crop = cv2.copyMakeBorder(crop, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)

    interpolation = cv2.INTER_AREA if side > FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)


def to_model_input(faces):
    """Turn (N, 48, 48) uint8 faces into the model's (N, 48, 48, 1) float32 input, values 0-255."""
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"expected faces of shape (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
    return faces.astype(np.float32)[..., None]
