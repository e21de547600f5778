"""Build the Telegram application: handlers in matching order, logging, heartbeat, shutdown."""

import asyncio
import contextlib
import functools
import logging
import operator
import pathlib
import time
import urllib.parse

from telegram import Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot import handlers
from bot.photos import PhotoReader
from bot.settings import Settings

log = logging.getLogger(__name__)

# Handler tasks that may run at once; photos beyond the inference workers wait cheaply.
CONCURRENT_UPDATES = 64
HEARTBEAT_INTERVAL_S = 10
ALLOWED_UPDATES = [Update.MESSAGE]

IMAGE_DOCUMENT = filters.Document.IMAGE | functools.reduce(
    operator.or_, (filters.Document.FileExtension(ext.lstrip(".")) for ext in sorted(handlers.IMAGE_EXTENSIONS)))


class TokenRedactor(logging.Filter):
    """Replace the bot token in every log record, including those of the HTTP libraries."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def filter(self, record):
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), ()
        if record.exc_info and record.exc_info[1] is not None and self.token in str(record.exc_info[1]):
            record.msg = record.getMessage() + f" ({type(record.exc_info[1]).__name__}; details hidden: they contain the token)"
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(settings: Settings):
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = TokenRedactor(settings.token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    # httpx logs every request URL, which contains the token, at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def build_application(settings: Settings, photo_reader: PhotoReader) -> Application:
    builder = (Application.builder()
               .token(settings.token)
               .concurrent_updates(CONCURRENT_UPDATES)
               .media_write_timeout(60)
               .post_init(_start_heartbeat)
               .post_stop(_stop_heartbeat)
               .post_shutdown(_close_photo_reader))
    if settings.api_base_url:
        # A self-hosted Bot API server serves methods at <root>/bot<token>/<method> and
        # files at <root>/file/bot<token>/<path>, like api.telegram.org.
        builder = builder.base_url(f"{settings.api_base_url}/bot").base_file_url(f"{settings.api_base_url}/file/bot")
    application = builder.build()
    application.bot_data["settings"] = settings
    application.bot_data["photo_reader"] = photo_reader

    messages = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler(["start", "help"], handlers.help_command, filters=messages))
    application.add_handler(CommandHandler("emotions", handlers.emotions_command, filters=messages))
    application.add_handler(MessageHandler(messages & filters.PHOTO, handlers.photo))
    application.add_handler(MessageHandler(messages & IMAGE_DOCUMENT, handlers.photo))
    application.add_handler(MessageHandler(messages & filters.Document.ALL & filters.ChatType.PRIVATE,
                                           handlers.other_document))
    application.add_error_handler(handlers.error_handler)
    return application


def run(application: Application, settings: Settings):
    """Serve updates by long polling, or by webhook when TELEGRAM_WEBHOOK_URL is set, until a stop signal."""
    if settings.webhook_url:
        path = urllib.parse.urlsplit(settings.webhook_url).path.strip("/")
        log.info("Starting webhook server on %s:%d, path /%s", settings.webhook_listen, settings.webhook_port, path)
        application.run_webhook(listen=settings.webhook_listen, port=settings.webhook_port, url_path=path,
                                webhook_url=settings.webhook_url, secret_token=settings.webhook_secret,
                                allowed_updates=ALLOWED_UPDATES)
    else:
        log.info("Starting long polling")
        application.run_polling(allowed_updates=ALLOWED_UPDATES)
    log.info("Stopped")


async def _start_heartbeat(application: Application):
    me = await application.bot.get_me()
    log.info("Signed in as @%s", me.username)
    path = application.bot_data["settings"].heartbeat_file
    if path:
        application.bot_data["heartbeat"] = asyncio.get_running_loop().create_task(_beat(pathlib.Path(path)))


async def _beat(path):
    while True:
        path.write_text(f"{time.time():.0f}\n")
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def _stop_heartbeat(application: Application):
    task = application.bot_data.pop("heartbeat", None)
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_photo_reader(application: Application):
    await asyncio.to_thread(application.bot_data["photo_reader"].close)
