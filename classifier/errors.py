"""Errors raised for photos that cannot be read; each message is fit to show a person."""


class ImageError(Exception):
    """A photo that cannot be analysed. `kind` names the reason in one word for programs."""

    kind = "image_error"


class EmptyFileError(ImageError):
    kind = "empty_file"


class FileTooLargeError(ImageError):
    kind = "file_too_large"


class NotAnImageError(ImageError):
    kind = "not_an_image"


class UnsupportedFormatError(ImageError):
    kind = "unsupported_format"


class TruncatedImageError(ImageError):
    kind = "truncated_image"


class ImageTooLargeError(ImageError):
    """More pixels than the limit: a decompression bomb or an absurdly large photo."""

    kind = "too_many_pixels"
