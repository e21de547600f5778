"""Render docs/reply.jpg: a real reply of `python -m bot`, captured from a fake Bot API server.

    python docs/make_reply_picture.py PHOTO [--out docs/reply.jpg]

Starts the bot against the test suite's fake Bot API server on 127.0.0.1, sends it PHOTO,
and draws the photo the bot uploaded with the caption it sent underneath, like a chat.
"""

import argparse
import asyncio
import io
import pathlib
import sys

from PIL import Image, ImageDraw, ImageFont

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bot_process import TOKEN, start_bot, stop_bot  # noqa: E402
from tests.fake_bot_api import PRIVATE_CHAT, FakeBotApi  # noqa: E402
from tests.test_bot import photo_sizes  # noqa: E402

WIDTH = 720
MARGIN = 16
# Noto Color Emoji is not available to Pillow everywhere, so emoji are left out of the picture.
EMOJI_FREE = str.maketrans("", "", "😠🤢😨😄😢😮😐")


async def capture_reply(photo_bytes, cwd):
    api = await FakeBotApi(TOKEN).start()
    process = await start_bot(api, cwd)
    try:
        await api.wait_for(1, "getUpdates", timeout_s=120)
        api.add_file("photo", photo_bytes)
        api.push_message(PRIVATE_CHAT, photo=photo_sizes("photo", photo_bytes))
        [(_, params)] = await api.wait_for(1, "sendPhoto", timeout_s=120)
    finally:
        await stop_bot(process)
        await api.stop()
    return params["photo"], params["caption"]


def render(jpeg, caption):
    photo = Image.open(io.BytesIO(jpeg)).convert("RGB")
    photo = photo.resize((WIDTH, round(photo.height * WIDTH / photo.width)), Image.Resampling.LANCZOS)
    font = ImageFont.load_default(size=22)
    lines = caption.translate(EMOJI_FREE).replace("  ", " ").splitlines()
    line_height = 30
    picture = Image.new("RGB", (WIDTH + 2 * MARGIN, photo.height + len(lines) * line_height + 3 * MARGIN),
                        (235, 240, 245))
    picture.paste(photo, (MARGIN, MARGIN))
    draw = ImageDraw.Draw(picture)
    for index, line in enumerate(lines):
        draw.text((MARGIN, photo.height + 2 * MARGIN + index * line_height), line, font=font, fill=(20, 20, 20))
    return picture


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=pathlib.Path, help="photo to send to the bot")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "reply.jpg",
                        help="image to write (JPEG or PNG, by suffix)")
    args = parser.parse_args()

    jpeg, caption = asyncio.run(capture_reply(args.photo.read_bytes(), ROOT))
    render(jpeg, caption).save(args.out, quality=85, optimize=True)
    print(caption)


if __name__ == "__main__":
    main()
