"""The classifier on real photos (matplotlib's sample portrait and collages of it) and generated files."""

import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import classifier
from classifier import EMOTIONS, decode_image, errors
from classifier.detect import box_iou
from classifier.emotion import DEFAULT_MODEL
from tests.conftest import ROOT, encode, make_collage, portrait_path

EXIF_ORIENTATION = 0x0112


def test_portrait_has_one_face(reader, portrait_bytes):
    analysis = reader.read_bytes(portrait_bytes)

    assert len(analysis.faces) == 1
    face = analysis.faces[0]
    assert face.label in EMOTIONS
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.confidence == max(face.probabilities.values())
    assert len(face.landmarks) == 5


@pytest.mark.parametrize("widths", [(220, 160, 120), (300, 90, 60, 45, 200)])
def test_collage_has_every_face(reader, widths):
    analysis = reader.read_bytes(encode(make_collage(widths)))

    assert len(analysis.faces) == len(widths)


def test_big_face_in_selfie_is_found(reader):
    portrait = Image.open(portrait_path())
    selfie = portrait.resize((portrait.width * 4, portrait.height * 4), Image.Resampling.BICUBIC)

    faces = reader.read_bytes(encode(selfie)).faces

    assert len(faces) == 1
    assert faces[0].box[2] > 500


def test_faceless_image_has_no_face(reader, faceless_bytes):
    assert reader.read_bytes(faceless_bytes).faces == []


@pytest.mark.parametrize("orientation, undo", [
    (3, Image.Transpose.ROTATE_180),
    (6, Image.Transpose.ROTATE_90),
    (8, Image.Transpose.ROTATE_270),
])
def test_exif_rotation_gives_upright_faces(reader, orientation, undo):
    upright = make_collage()
    stored = upright.transpose(undo)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation

    rotated = reader.read_bytes(encode(stored, exif=exif.tobytes(), quality=95))
    reference = reader.read_bytes(encode(upright, quality=95))

    assert (rotated.width, rotated.height) == upright.size
    assert len(rotated.faces) == len(reference.faces) == 3
    for face, expected in zip(rotated.faces, reference.faces):
        assert box_iou(face.box, expected.box) > 0.8


def test_emotion_model_on_cropped_faces():
    model = classifier.EmotionModel()
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)

    probabilities = model.predict(faces)

    assert probabilities.shape == (5, 7)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert model.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_shipped_model_fits_size_budget():
    # Weights ship in the repository and the container image: at most 30 MB.
    assert DEFAULT_MODEL.stat().st_size <= 30_000_000


def test_emotion_model_rejects_wrong_shape():
    with pytest.raises(ValueError, match="expected faces of shape"):
        classifier.EmotionModel().predict(np.zeros((2, 64, 64), np.uint8))


# Decoding: every format people post, and a typed error for every kind of bad file.

def rgb_image():
    return Image.open(portrait_path()).convert("RGB").resize((120, 140))


def animated_gif():
    frames = [rgb_image(), Image.new("RGB", (120, 140), (255, 0, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def sixteen_bit_png():
    gray = np.asarray(rgb_image().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


@pytest.mark.parametrize("make", [
    lambda: encode(rgb_image(), "JPEG"),
    lambda: encode(rgb_image(), "PNG"),
    lambda: encode(rgb_image().convert("RGBA"), "PNG"),
    lambda: encode(rgb_image().convert("P"), "PNG"),
    lambda: encode(rgb_image().convert("L"), "PNG"),
    lambda: encode(rgb_image().convert("LA"), "PNG"),
    sixteen_bit_png,
    lambda: encode(rgb_image(), "WEBP"),
    lambda: encode(rgb_image(), "BMP"),
    lambda: encode(rgb_image(), "TIFF"),
    lambda: encode(rgb_image().convert("CMYK"), "JPEG"),
    animated_gif,
], ids=["jpeg", "png", "png-alpha", "png-palette", "png-gray", "png-gray-alpha", "png-16bit", "webp", "bmp",
        "tiff", "jpeg-cmyk", "gif-animated"])
def test_decode_formats(make):
    rgb = decode_image(make())

    assert rgb.shape == (140, 120, 3)
    assert rgb.dtype == np.uint8
    # The portrait is mid-gray on average in every format; a broken conversion is not.
    assert 40 < rgb.mean() < 200


@pytest.mark.parametrize("mode, key", [("RGB", (0, 0, 0)), ("L", 0), ("P", 0)])
def test_decode_colour_key_becomes_white(mode, key):
    image = Image.new("RGB", (20, 10), (200, 30, 30))
    image.paste((0, 0, 0), (0, 0, 10, 10))
    image = image.convert(mode) if mode != "P" else image.quantize(2)
    if mode == "P":
        key = image.getpixel((0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=key)

    rgb = decode_image(buffer.getvalue())

    assert (rgb[:, :10] == 255).all()
    assert (rgb[:, 10:] != 255).any()


def test_decode_ignores_file_name_and_uses_bytes():
    png = encode(rgb_image(), "PNG")

    assert decode_image(png).shape == (140, 120, 3)


def test_decode_gif_takes_first_frame():
    rgb = decode_image(animated_gif())

    assert not (rgb[..., 0] > 200).all()  # the second frame is plain red


@pytest.mark.parametrize("data, error", [
    (b"", errors.EmptyFileError),
    (b"plain text, not an image\n", errors.NotAnImageError),
    (lambda: encode(rgb_image(), "JPEG")[:400], errors.TruncatedImageError),
    (lambda: encode(rgb_image(), "PNG")[:300], errors.TruncatedImageError),
    (lambda: encode(rgb_image(), "PPM"), errors.UnsupportedFormatError),
    (lambda: encode(Image.new("1", (12000, 12000)), "PNG"), errors.ImageTooLargeError),
    (lambda: encode(Image.new("L", (70000, 1)), "PNG"), errors.ImageTooLargeError),
], ids=["empty", "text", "truncated-jpeg", "truncated-png", "ppm", "decompression-bomb", "one-row"])
def test_decode_errors(data, error):
    data = data() if callable(data) else data

    with pytest.raises(error) as raised:
        decode_image(data, max_pixels=50_000_000)

    assert str(raised.value)[0].isupper()  # a sentence a person can read
    assert raised.value.kind != errors.ImageError.kind


def test_decode_rejects_file_over_byte_limit():
    with pytest.raises(errors.FileTooLargeError, match="limit"):
        decode_image(encode(rgb_image(), "PNG"), max_bytes=1000)


def test_large_photo_is_analysed_not_refused(reader):
    big = Image.open(portrait_path()).resize((4096, 4800), Image.Resampling.BILINEAR)

    analysis = reader.read_bytes(encode(big, quality=80))

    assert (analysis.width, analysis.height) == (4096, 4800)
    assert len(analysis.faces) == 1


def test_huge_jpeg_decodes_at_reduced_scale(reader, monkeypatch):
    from classifier import decode

    monkeypatch.setattr(decode, "REDUCED_MIN_PIXELS", 1_000_000)
    monkeypatch.setattr(decode, "REDUCED_MIN_SIDE", 500)
    big = Image.open(portrait_path()).resize((2048, 2400), Image.Resampling.BILINEAR)

    jpeg = reader.read_bytes(encode(big, quality=80))
    png = decode_image(encode(big, "PNG"))

    assert (jpeg.width, jpeg.height) == (1024, 1200)
    assert len(jpeg.faces) == 1
    x, y, width, height = jpeg.faces[0].box
    assert x + width <= 1024
    assert y + height <= 1200
    assert png.shape == (2400, 2048, 3)


# Drawing.

@pytest.mark.parametrize("size", [(300, 220), (4000, 3000)])
def test_annotate_fits_telegram_limits(reader, size):
    photo = make_collage().resize(size, Image.Resampling.BILINEAR)
    analysis = reader.read_bytes(encode(photo))

    jpeg = classifier.annotate(analysis.image, analysis.faces)

    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert image.width + image.height <= 10_000
    assert len(jpeg) <= 10 * 1024 * 1024
    assert max(image.size) >= 800  # small photos are enlarged so their labels stay legible


def test_annotate_draws_on_the_faces(reader, portrait_bytes):
    analysis = reader.read_bytes(portrait_bytes)
    jpeg = classifier.annotate(analysis.image, analysis.faces)

    original = Image.open(io.BytesIO(portrait_bytes)).convert("RGB").resize(Image.open(io.BytesIO(jpeg)).size)
    drawn = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)
    changed = np.abs(drawn - np.asarray(original, dtype=np.int16)).max(axis=2) > 60

    x, y, w, h = (round(v * drawn.shape[1] / analysis.width) for v in analysis.faces[0].box)
    assert changed[y:y + h, x].mean() > 0.6  # the left edge of the box, over a varied background
    assert changed.mean() < 0.2


# The command line.

def test_cli_json_lines(tmp_path, portrait_bytes):
    (tmp_path / "portrait.jpg").write_bytes(portrait_bytes)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")

    result = subprocess.run([sys.executable, "-m", "classifier", "portrait.jpg", "broken.png", "--json",
                             "--out", "annotated"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    assert result.returncode == 1  # one photo failed
    good, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert good["path"] == "portrait.jpg"
    assert (good["width"], good["height"]) == (512, 600)
    assert len(good["faces"]) == 1
    assert len(good["faces"][0]["box"]) == 4
    assert set(good["faces"][0]["probabilities"]) == set(EMOTIONS)
    assert (tmp_path / "annotated" / "portrait.emotions.jpg").exists()
    assert bad["path"] == "broken.png"
    assert bad["error"] in ("truncated_image", "not_an_image")
    assert bad["message"]


def test_cli_stops_reading_past_size_limit(tmp_path):
    with open(tmp_path / "huge.jpg", "wb") as file:
        file.truncate(60 * 1024 * 1024)  # sparse: no disk space used
    paths = ["huge.jpg"] + (["/dev/zero"] if pathlib.Path("/dev/zero").exists() else [])

    result = subprocess.run([sys.executable, "-m", "classifier", *paths, "--json", "--no-images"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["error"] for record in records] == ["file_too_large"] * len(paths)
    assert records[0]["message"] == "The file is 60.0 MB; the limit is 50 MB."


def test_faces_in_long_strip_are_found(reader):
    portrait = Image.open(portrait_path()).convert("RGB").resize((200, 234))
    strip = Image.new("RGB", (12000, 300), (128, 128, 128))
    for x in (100, 2600, 5100, 7600, 11000):
        strip.paste(portrait, (x, 30))

    analysis = reader.read_bytes(encode(strip))
    reply = Image.open(io.BytesIO(classifier.annotate(analysis.image, analysis.faces)))

    assert len(analysis.faces) == 5
    assert reply.width <= 20 * reply.height  # Telegram rejects thinner photos


@pytest.mark.parametrize("array", [np.full((64, 64, 3), 0.5), np.zeros((64, 64), np.uint8),
                                   np.zeros((0, 0, 3), np.uint8)],
                         ids=["floats", "grayscale", "no-pixels"])
def test_read_image_rejects_other_arrays(reader, array):
    with pytest.raises(ValueError, match="RGB uint8"):
        reader.read_image(array)


def test_missing_default_model_says_how_to_install(tmp_path, monkeypatch):
    from classifier import emotion

    missing = tmp_path / "site-packages" / "models" / "emotion.onnx"
    monkeypatch.setattr(emotion, "DEFAULT_MODEL", missing)

    with pytest.raises(emotion.ModelError, match="pip install -e ."):
        emotion.EmotionModel(missing)
    with pytest.raises(emotion.ModelError) as other:
        emotion.EmotionModel(tmp_path / "mine.onnx")
    assert "pip install" not in str(other.value)
