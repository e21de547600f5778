"""Decode photo bytes into an upright RGB array, refusing what is not a usable image."""

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.errors import (EmptyFileError, FileTooLargeError, ImageTooLargeError,
                               NotAnImageError, TruncatedImageError, UnsupportedFormatError)

# Telegram's Bot API lets a bot download files of up to 20 MB (more from a local Bot API
# server); 50 MB leaves room for such servers without letting one file exhaust memory.
MEGABYTE = 1024 * 1024
MAX_BYTES = 50 * MEGABYTE
# 100 megapixels decode to 300 MB of RGB: larger than any phone or camera photo people post.
MAX_PIXELS = 100_000_000
# The largest side a JPEG can have. Pillow 13 raised MemoryError converting a PNG of one row
# of 99 million pixels, which MAX_PIXELS alone lets through.
MAX_SIDE = 65_535

# A JPEG can decode at 1/2, 1/4 or 1/8 scale in a fraction of the time and memory. The smallest
# scale that keeps this many pixels and this shorter side is used: still more than detection and
# the reply picture (at most 2560 pixels a side) use. NOTE: a face under 48 pixels wide after the
# reduction gets a blurrier 48x48 crop than it would at full scale.
REDUCED_MIN_PIXELS = 12_000_000
REDUCED_MIN_SIDE = 2048

SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF"}

# Leading bytes of the supported formats: a file that starts like one but cannot be opened is
# a damaged image, not some other kind of file.
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
DAMAGED = "The image file is damaged or incomplete (truncated)."


def decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
    """Decode image bytes to an upright (EXIF-applied) RGB uint8 array of shape (H, W, 3).

    The format comes from the bytes, never a file name. Animated images give their first
    frame. Transparent pixels are composited onto white. JPEGs of 48 megapixels or more, with
    a shorter side of 4096 pixels or more, are decoded at a reduced scale (see
    `REDUCED_MIN_PIXELS`), so the array is smaller than the image in the file. Raises an `ImageError` subclass.
    """
    if not data:
        raise EmptyFileError("The file is empty.")
    if len(data) > max_bytes:
        raise FileTooLargeError(f"The file is {len(data) / MEGABYTE:.1f} MB; the limit is {max_bytes / MEGABYTE:g} MB.")

    with warnings.catch_warnings():
        # Pillow warns about very large images (our own limit applies first) and about
        # malformed metadata such as EXIF, which does not stop the pixels from decoding.
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            if data.startswith(SIGNATURES) or data[8:12] == b"WEBP":
                raise TruncatedImageError(DAMAGED) from None
            raise NotAnImageError("This file is not an image in a format I can read "
                                  "(JPEG, PNG, WebP, BMP, TIFF or GIF).") from None
        except Image.DecompressionBombError:
            raise ImageTooLargeError(f"The image has more than {max_pixels:,} pixels.") from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise TruncatedImageError(DAMAGED) from None

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
            if max(width, height) > MAX_SIDE:
                raise ImageTooLargeError(f"The image is {width}x{height} pixels; the limit is "
                                         f"{MAX_SIDE:,} pixels on a side.")
            factor = _reduction_factor(width, height) if image.format in ("JPEG", "MPO") else 1
            if factor > 1:
                image.draft("RGB", (width // factor, height // factor))
            try:
                image.load()
                # In place, because a transposed copy would keep a second full-size image in memory.
                ImageOps.exif_transpose(image, in_place=True)
                return _to_rgb(image)
            except Image.DecompressionBombError:
                raise ImageTooLargeError(f"The image has more than {max_pixels:,} pixels.") from None
            except MemoryError:
                raise ImageTooLargeError(f"The image is {width}x{height} pixels, too large to decode "
                                         "in the memory available.") from None
            except (OSError, ValueError, SyntaxError, EOFError):
                raise TruncatedImageError(DAMAGED) from None


def _reduction_factor(width, height):
    """Return the largest JPEG scale divisor (1, 2, 4 or 8) that keeps the minimum pixels and side."""
    for factor in (8, 4, 2):
        reduced_width, reduced_height = width // factor, height // factor
        if (reduced_width * reduced_height >= REDUCED_MIN_PIXELS
                and min(reduced_width, reduced_height) >= REDUCED_MIN_SIDE):
            return factor
    return 1


def _to_rgb(image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: Pillow's own conversion clips to 255, so keep the high byte instead.
        # Integer shifts keep the peak memory near that of the decoded image itself.
        values = np.asarray(image)
        if image.mode == "I" and values.max() <= 255:
            gray = values.astype(np.uint8)
        else:
            gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        del values
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if image.mode in ("P", "L", "RGB") and "transparency" in image.info:
        # A palette entry or a colour key marks the transparent pixels, which RGBA carries as alpha.
        image = image.convert("RGBA")
    if image.mode == "P":
        image = image.convert("RGB")
    if image.mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image.close()  # Free its pixels before the array copy below.
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
