"""Emotion-reading Telegram bot: `python -m bot`, with TELEGRAM_BOT_TOKEN in the environment or .env.

Loads the emotion model and face detector once, then replies to every photo with the photo
annotated and a caption naming each face's emotion.
"""

import logging
import os
import pathlib
import re
import sys

from bot.app import build_application, configure_logging, run
from bot.photos import PhotoReader
from bot.settings import Settings, SettingsError

log = logging.getLogger("bot")


def load_dotenv(path=".env"):
    """Copy KEY=VALUE lines of a .env file into the environment, without overriding what is set."""
    env_file = pathlib.Path(path)
    if not env_file.is_file():
        return
    # utf-8-sig drops the byte-order mark that some Windows editors write.
    for line in env_file.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        os.environ.setdefault(key, _dotenv_value(value.strip()))


def _dotenv_value(raw):
    """Return a .env value without its quotes, or without a trailing ` # comment` when unquoted."""
    closing = raw.find(raw[0], 1) if raw[:1] in ("'", '"') else -1
    if closing > 0:
        return raw[1:closing]
    return re.split(r"\s#", raw, maxsplit=1)[0].strip()


def main():
    load_dotenv()
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if settings.heartbeat_file:
        try:
            pathlib.Path(settings.heartbeat_file).write_text("starting\n")
        except OSError as error:
            log.error("HEARTBEAT_FILE=%s cannot be written: %s. Choose a writable path, or unset it",
                      settings.heartbeat_file, error)
            return 2

    from classifier import DEFAULT_MODEL, EmotionReader, ModelError
    from telegram.error import InvalidToken, TelegramError

    try:
        reader = EmotionReader(settings.model_path or DEFAULT_MODEL, detector=settings.face_detector,
                               min_score=settings.min_face_score, threads=settings.inference_threads,
                               max_bytes=int(settings.max_file_mb * 1024 * 1024))
    except (ModelError, ImportError) as error:
        log.error("%s", error)
        return 2
    log.info("Loaded emotion model %s and %s face detector", reader.model.path.name, reader.detector.name)
    application = build_application(settings, PhotoReader(reader, settings.inference_workers))
    try:
        run(application, settings)
    except InvalidToken:
        # When the token was revoked while running, the heartbeat's token check has already logged it.
        if not application.bot_data.get("updates_failed"):
            log.error("The Bot API rejected the token (or TELEGRAM_API_BASE_URL is not a Bot API root): "
                      "check TELEGRAM_BOT_TOKEN with @BotFather")
        return 1
    except TelegramError as error:
        log.error("Cannot start the bot: %s. Check the network and TELEGRAM_API_BASE_URL", error)
        return 1
    return 1 if application.bot_data.get("updates_failed") else 0


if __name__ == "__main__":
    sys.exit(main())
