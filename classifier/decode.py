"""Decode photo bytes into an upright RGB array, refusing what is not a usable image."""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.errors import (EmptyFileError, FileTooLargeError, ImageTooLargeError,
                               NotAnImageError, TruncatedImageError, UnsupportedFormatError)

# Telegram's Bot API lets a bot download files of up to 20 MB (more from a local Bot API
# server); 50 MB leaves room for such servers without letting one file exhaust memory.
MAX_BYTES = 50 * 1024 * 1024
# 100 megapixels decode to 300 MB of RGB: larger than any phone or camera photo people post.
MAX_PIXELS = 100_000_000

SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF"}


def decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
    """Decode image bytes to an upright (EXIF-applied) RGB uint8 array of shape (H, W, 3).

    The format comes from the bytes, never a file name. Animated images give their first
    frame. Transparent pixels are composited onto white. Raises an `ImageError` subclass.
    """
    if not data:
        raise EmptyFileError("The file is empty.")
    if len(data) > max_bytes:
        raise FileTooLargeError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")

    with warnings.catch_warnings():
        # Pillow warns before it raises for very large images; our own limit applies first.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise NotAnImageError("This file is not an image in a format I can read "
                                  "(JPEG, PNG, WebP, BMP, TIFF or GIF).") from None
        except Image.DecompressionBombError:
            raise ImageTooLargeError(f"The image has more than {max_pixels:,} pixels.") from None
        except (OSError, ValueError, SyntaxError) as error:
            raise TruncatedImageError(f"The image file is damaged ({error}).") from None

        with image:
            if image.format not in SUPPORTED_FORMATS:
                raise UnsupportedFormatError(f"{image.format} images are not supported; "
                                             "send a JPEG, PNG, WebP, BMP, TIFF or GIF.")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"The image is {width}x{height} pixels; the limit is "
                                         f"{max_pixels / 1e6:.0f} megapixels.")
            if width == 0 or height == 0:
                raise NotAnImageError("The image has no pixels.")
            try:
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _to_rgb(upright)
            except Image.DecompressionBombError:
                raise ImageTooLargeError(f"The image has more than {max_pixels:,} pixels.") from None
            except (OSError, ValueError, SyntaxError, EOFError) as error:
                raise TruncatedImageError(f"The image file is truncated or damaged ({error}).") from None


def _to_rgb(image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: Pillow's own conversion clips to 255, so scale the range down.
        values = np.asarray(image, dtype=np.uint32 if image.mode == "I" else np.uint16).astype(np.float64)
        peak = 65535.0 if image.mode != "I" or values.max() > 255 else 255.0
        gray = np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
