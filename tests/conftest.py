"""Shared test data: real photos from matplotlib's sample data, collages of them, and paths
to the shared data sets (tests that need those skip when they are absent)."""

import io
import pathlib

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FER2013_CSV = SHARED_DATA / "fer2013" / "fer2013.csv.gz"
FACES_DIR = SHARED_DATA / "faces"


def portrait_path():
    from matplotlib import cbook

    return pathlib.Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def encode(image, format="JPEG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def make_collage(face_widths=(220, 160, 120), gap=60):
    """Place copies of the portrait side by side on a gray canvas; one face per copy."""
    portrait = Image.open(portrait_path()).convert("RGB")
    copies = [portrait.resize((w, round(w * portrait.height / portrait.width)), Image.Resampling.LANCZOS)
              for w in face_widths]
    width = sum(c.width for c in copies) + gap * (len(copies) + 1)
    height = max(c.height for c in copies) + 2 * gap
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    x = gap
    for copy in copies:
        canvas.paste(copy, (x, gap))
        x += copy.width + gap
    return canvas


def make_faceless(size=(480, 360)):
    """A smooth gradient with shapes: an image with no face in it."""
    y, x = np.mgrid[0:size[1], 0:size[0]]
    rgb = np.stack([x * 255 // size[0], y * 255 // size[1], np.full_like(x, 90)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


@pytest.fixture(scope="session")
def portrait_bytes():
    return portrait_path().read_bytes()


@pytest.fixture(scope="session")
def collage_bytes():
    return encode(make_collage())


@pytest.fixture(scope="session")
def faceless_bytes():
    return encode(make_faceless())


@pytest.fixture(scope="session")
def fer2013_csv():
    if not FER2013_CSV.exists():
        pytest.skip(f"FER2013 data not found at {FER2013_CSV}")
    return FER2013_CSV


@pytest.fixture(scope="session")
def faces_dir():
    if not (FACES_DIR / "testing.xml").exists():
        pytest.skip(f"face detection photos not found in {FACES_DIR}")
    return FACES_DIR


@pytest.fixture
async def api():
    """A fake Bot API server on 127.0.0.1 that accepts the test bot's token."""
    from tests.bot_process import TOKEN
    from tests.fake_bot_api import FakeBotApi

    server = await FakeBotApi(TOKEN).start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def reader():
    from classifier import EmotionReader

    return EmotionReader()
