"""The texts the bot sends: help, captions for analysed photos, and error replies."""

from collections import Counter

# Telegram takes photo captions of up to 1024 characters. Its message entities count UTF-16 code
# units, where each emoji below takes 2, so captions are measured in those units to fit either way.
MAX_CAPTION_CHARS = 1024

EMOJI = {"angry": "😠", "disgust": "🤢", "fear": "😨", "happy": "😄", "sad": "😢",
         "surprise": "😮", "neutral": "😐"}

HELP = (
    "Send me a photo and I will find every face in it and tell you which of seven emotions "
    "each one shows: angry, disgust, fear, happy, sad, surprise or neutral.\n\n"
    "• Send it as a photo, or as a file to keep full resolution (JPEG, PNG, WebP, BMP, TIFF or GIF).\n"
    "• In a group, I read the photos I can see. With privacy mode on, reply to a photo with "
    "/emotions, or put /emotions in its caption.\n"
    "• Faces work best when they face the camera and are at least 30 pixels wide.\n\n"
    "The numbers are the model's confidence. It reads facial expressions, not feelings."
)

NO_FACE = ("I couldn't find a face in this photo. Faces work best when they face the camera, "
           "are well lit and are at least 30 pixels wide.")
NOT_AN_IMAGE = "That file is not an image I can read. Send a photo, or a JPEG, PNG, WebP, BMP, TIFF or GIF file."
NOTHING_TO_READ = "Reply to a photo with /emotions, or send /emotions as the caption of a photo."
FAILED = "Sorry, something went wrong while reading this photo. Please try again later."
NOT_DOWNLOADED = "Telegram would not give me this file, so I can't read it. Please send it again."


SEND_A_PHOTO = "Send me a photo and I'll tell you the emotion on every face in it. /help explains more."


def too_large(size_mb, limit_mb, is_photo=False):
    """Explain a file over the download limit; `size_mb` is None when Telegram did not give the size."""
    size = f"This file is {size_mb:.1f} MB" if size_mb else "This file is too large"
    # Telegram compresses a photo, so sending a large image file as a photo makes it small enough.
    advice = "Send a smaller photo." if is_photo else "Send it as a photo instead."
    return f"{size}; I can read files up to {limit_mb:g} MB. {advice}"


def unreadable(message):
    return f"I can't read this image. {message}"


def caption(faces):
    """Build the caption for analysed faces: a summary for groups, then one line per numbered face."""
    lines = []
    if len(faces) > 1:
        counts = Counter(face.label for face in faces).most_common()
        lines.append(f"{len(faces)} faces: " + ", ".join(f"{count} {label}" for label, count in counts))
    for number, face in enumerate(faces, start=1):
        line = f"{number}. {EMOJI[face.label]} {face.label} {face.confidence:.0%}"
        runner_up = sorted(face.probabilities.items(), key=lambda item: item[1], reverse=True)[1]
        if len(faces) <= 5:
            line += f" (then {runner_up[0]} {runner_up[1]:.0%})"
        lines.append(line)
    return _fit(lines)


def _fit(lines):
    text = "\n".join(lines)
    if _utf16_length(text) <= MAX_CAPTION_CHARS:
        return text
    kept = []
    for index, line in enumerate(lines):
        more = f"… and {len(lines) - index} more"
        if _utf16_length("\n".join(kept + [line, more])) > MAX_CAPTION_CHARS:
            return "\n".join(kept + [more])
        kept.append(line)
    return "\n".join(kept)


def _utf16_length(text):
    return len(text.encode("utf-16-le")) // 2
