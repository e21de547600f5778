"""Draw each face's box, number, emotion and confidence onto the photo; encode it as JPEG."""

import io

from PIL import Image, ImageDraw, ImageFont

# Telegram accepts photos of at most 10 MB with width + height at most 10,000 px; 2560 px on
# the longer side keeps detail while staying far from both.
MAX_OUTPUT_SIDE = 2560
# Small photos are enlarged first so that the text drawn on them stays sharp when shown.
MIN_OUTPUT_SIDE = 800
MAX_OUTPUT_BYTES = 10 * 1024 * 1024
# Telegram also rejects photos more than 20 times longer than wide, so thinner photos get a border.
MAX_OUTPUT_RATIO = 20
BORDER_COLOR = (40, 40, 40)

COLORS = {
    "angry": (230, 57, 70),
    "disgust": (106, 153, 78),
    "fear": (142, 68, 173),
    "happy": (255, 196, 0),
    "sad": (52, 120, 219),
    "surprise": (255, 127, 39),
    "neutral": (170, 170, 170),
}


def annotate(rgb, faces, quality=90):
    """Return JPEG bytes of the photo with a numbered, labelled box for each `FaceEmotion`.

    Faces are numbered from 1 in list order, matching any caption built from the same list.
    """
    image = Image.fromarray(rgb)
    longest = max(image.size)
    scale = 1.0
    if longest > MAX_OUTPUT_SIDE:
        scale = MAX_OUTPUT_SIDE / longest
    elif longest < MIN_OUTPUT_SIDE:
        scale = MIN_OUTPUT_SIDE / longest
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    image, (left, top) = _add_border(image)

    draw = ImageDraw.Draw(image)
    longest = max(image.size)
    font = ImageFont.load_default(size=max(12, round(longest / 45)))
    line_width = max(2, round(longest / 400))
    for number, face in enumerate(faces, start=1):
        x, y, width, height = (round(v * scale) for v in face.box)
        x, y = x + left, y + top
        color = COLORS.get(face.label, (255, 255, 255))
        draw.rectangle((x, y, x + width, y + height), outline=color, width=line_width)
        _draw_tag(draw, font, f"{number} {face.label} {face.confidence:.0%}", (x, y, width, height),
                  color, image.size)
    return _encode_jpeg(image, quality)


def _add_border(image):
    """Center `image` on a border that brings it within MAX_OUTPUT_RATIO; return it and its offset."""
    width, height = image.size
    if max(width, height) <= MAX_OUTPUT_RATIO * min(width, height):
        return image, (0, 0)
    size = (width, -(-width // MAX_OUTPUT_RATIO)) if width > height else (-(-height // MAX_OUTPUT_RATIO), height)
    offset = ((size[0] - width) // 2, (size[1] - height) // 2)
    canvas = Image.new("RGB", size, BORDER_COLOR)
    canvas.paste(image, offset)
    return canvas, offset


def _draw_tag(draw, font, text, box, color, image_size):
    x, y, _, height = box
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    padding = max(2, (bottom - top) // 5)
    tag_width, tag_height = right - left + 2 * padding, bottom - top + 2 * padding
    # Above the box where there is room, otherwise just below its top edge.
    tag_y = y - tag_height if y - tag_height >= 0 else y
    tag_x = min(max(0, x), max(0, image_size[0] - tag_width))
    if tag_y + tag_height > image_size[1]:
        tag_y = max(0, image_size[1] - tag_height)
    draw.rectangle((tag_x, tag_y, tag_x + tag_width, tag_y + tag_height), fill=color)
    text_color = (0, 0, 0) if sum(color) > 450 else (255, 255, 255)
    draw.text((tag_x + padding - left, tag_y + padding - top), text, font=font, fill=text_color)


def _encode_jpeg(image, quality):
    while True:
        buffer = io.BytesIO()
        # Keep full colour resolution (4:4:4): Pillow's default, 4:2:0, halves it and
        # blurs thin red and blue box lines into the photo.
        image.save(buffer, "JPEG", quality=quality, optimize=True, subsampling=0)
        if buffer.tell() <= MAX_OUTPUT_BYTES or quality <= 40:
            return buffer.getvalue()
        quality -= 15
