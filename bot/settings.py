"""Bot settings, read from environment variables (see `.env.example` for every one)."""

import dataclasses
import math
import os
import re
import urllib.parse

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FACE_DETECTORS = ("auto", "yunet", "mtcnn")
# The Bot API manual (https://core.telegram.org/bots/api) shows tokens like 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11.
# Only the digits and colon at the start are checked, so no real token is rejected for its secret's characters.
TOKEN_PATTERN = re.compile(r"[0-9]+:\S+")


class SettingsError(Exception):
    """A missing or invalid environment variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    token: str
    api_base_url: str | None = None  # root of a self-hosted Bot API server
    log_level: str = "INFO"
    model_path: str | None = None
    face_detector: str = "auto"
    min_face_score: float = 0.8
    max_file_mb: float = 20.0
    inference_workers: int = 2
    inference_threads: int = 1  # ONNX Runtime threads per worker
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: str | None = None
    heartbeat_file: str | None = None  # touched every few seconds while the event loop runs

    def __repr__(self):
        # The token must never reach a log line or a traceback.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["token"] = "***"
        if fields["webhook_secret"]:
            fields["webhook_secret"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        token = environ.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            raise SettingsError("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather, then "
                                "put its token in the environment or in .env")
        if not TOKEN_PATTERN.fullmatch(token):
            # The value is not echoed, because a mistyped token may still be most of the real one.
            raise SettingsError("TELEGRAM_BOT_TOKEN is invalid: a token from @BotFather looks like "
                                "123456789:AAH... (digits, a colon, then the secret). Copy it whole from @BotFather")

        api_base_url = environ.get("TELEGRAM_API_BASE_URL", "").strip().rstrip("/") or None
        if api_base_url:
            _check_url("TELEGRAM_API_BASE_URL", api_base_url)

        log_level = environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL={log_level!r} is invalid: use one of {', '.join(LOG_LEVELS)}")
        face_detector = environ.get("FACE_DETECTOR", "auto").strip().lower() or "auto"
        if face_detector not in FACE_DETECTORS:
            raise SettingsError(f"FACE_DETECTOR={face_detector!r} is invalid: use one of {', '.join(FACE_DETECTORS)}")

        webhook_url = environ.get("TELEGRAM_WEBHOOK_URL", "").strip() or None
        webhook_secret = environ.get("TELEGRAM_WEBHOOK_SECRET", "").strip() or None
        if webhook_url and not webhook_secret:
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_WEBHOOK_URL: "
                                "Telegram sends it back on every update so the bot can reject forged ones")
        if webhook_secret and (len(webhook_secret) > 256
                               or not all(c.isascii() and (c.isalnum() or c in "_-") for c in webhook_secret)):
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET may contain only A-Z, a-z, 0-9, _ and - (1-256 characters)")

        return cls(
            token=token,
            api_base_url=api_base_url,
            log_level=log_level,
            model_path=environ.get("MODEL_PATH", "").strip() or None,
            face_detector=face_detector,
            min_face_score=_number(environ, "MIN_FACE_SCORE", 0.8, float, 0.0, 1.0),
            # The Bot API serves files of at most 20 MB to bots, and so does a self-hosted server
            # unless it runs with --local, which this bot does not support.
            max_file_mb=_number(environ, "MAX_FILE_MB", 20.0, float, 0.1, 20.0),
            inference_workers=_number(environ, "INFERENCE_WORKERS", 2, int, 1, 64),
            inference_threads=_number(environ, "INFERENCE_THREADS", 1, int, 1, 64),
            webhook_url=webhook_url,
            webhook_listen=environ.get("WEBHOOK_LISTEN", "0.0.0.0").strip() or "0.0.0.0",
            webhook_port=_number(environ, "WEBHOOK_PORT", 8443, int, 1, 65535),
            webhook_secret=webhook_secret,
            heartbeat_file=environ.get("HEARTBEAT_FILE", "").strip() or None,
        )


def _check_url(name, url):
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError for a port out of range
    except ValueError as error:
        raise SettingsError(f"{name}={url!r} is not a valid URL ({error}); example: http://127.0.0.1:8081") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={url!r} is not an http:// or https:// URL (example: http://127.0.0.1:8081)")


def _number(environ, name, default, kind, low, high):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise SettingsError(f"{name}={raw} is outside the range {low}-{high}")
    return value
