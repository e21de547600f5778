"""Build the Telegram application: handlers in matching order, logging, heartbeat, shutdown."""

import asyncio
import contextlib
import copy
import functools
import logging
import operator
import pathlib
import signal
import sys
import time
import traceback
import urllib.parse

from telegram import Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, CommandHandler, Defaults, ExtBot, MessageHandler, filters
from telegram.request import HTTPXRequest

from bot import handlers
from bot.photos import PhotoReader
from bot.settings import Settings

log = logging.getLogger(__name__)

# Handler tasks that may run at once. A waiting photo costs little (its download waits for a
# PhotoReader slot), and a low cap would let one chat's queued photos take every place.
CONCURRENT_UPDATES = 4096
HEARTBEAT_INTERVAL_S = 10
TOKEN_CHECK_EVERY_BEATS = 6  # one getMe a minute
ALLOWED_UPDATES = [Update.MESSAGE]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

IMAGE_DOCUMENT = filters.Document.IMAGE | functools.reduce(
    operator.or_, (filters.Document.FileExtension(ext.lstrip(".")) for ext in sorted(handlers.IMAGE_EXTENSIONS)))


class TokenRedactor(logging.Filter):
    """Replace the bot token in every log record, including those of the HTTP libraries."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def filter(self, record):
        message = message_of(record)
        if self.token in message:
            message = message.replace(self.token, "<token>")
        if record.exc_info and record.exc_info[1] is not None:
            details = "".join(traceback.format_exception(*record.exc_info))
            message += "\n" + details.replace(self.token, "<token>").rstrip()
            record.exc_info, record.exc_text = None, None
        # The formatted message replaces msg and args, so formatting cannot fail or leak later.
        record.msg, record.args = message, ()
        return True


def message_of(record):
    """Return the record's message, or its format string and arguments when they do not fit together.

    A filter runs outside the logging module's own error handling, so a failure here would
    raise in the code that logged, such as a library's background task.
    """
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError) as error:
        return f"{record.msg} (log arguments {record.args!r} do not fit it: {error})"


class StartFailureFilter(logging.Filter):
    """Drop the traceback python-telegram-bot logs when the bot cannot start: main() logs the cause in one line."""

    def filter(self, record):
        if message_of(record).startswith("Network Retry Loop (Bootstrap"):
            record.exc_info, record.exc_text = None, None
        return True


class WebhookUpdateRedactor(logging.Filter):
    """Log filter that cuts the webhook server's record of an unparsable update down to its id and the error.

    python-telegram-bot logs such an update in full, and its content is a user's message.
    """

    def filter(self, record):
        if not str(record.msg).startswith("Something went wrong processing the data received from Telegram"):
            return True
        # The logging module stores a single dict argument as record.args itself, not inside a tuple.
        update_id = record.args.get("update_id") if isinstance(record.args, dict) else None
        error = record.exc_info[1] if record.exc_info else None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "Webhook update %s rejected with HTTP 400: parsing it failed with %s: %s"
        record.args = (update_id, type(error).__name__, error)
        record.exc_info, record.exc_text = None, None
        return True


class UpdateSkippingBot(ExtBot):
    """A bot that skips the updates it cannot parse instead of asking for them again forever.

    python-telegram-bot (v22) parses a whole getUpdates response at once, so one update it cannot
    parse fails the call. Polling then requests the same updates again, indefinitely, and the
    updates after it are never handled. Here each such update is replaced by a bare one with the same
    id, which no handler matches, so polling acknowledges it and moves on.
    """

    async def _do_post(self, endpoint, data, **timeouts):
        # Every Bot API call ends here (Bot.<method> -> _post -> _do_post). ExtBot overrides it
        # the same way for rate limiting.
        result = await super()._do_post(endpoint, data, **timeouts)
        if endpoint == "getUpdates" and isinstance(result, list):
            result = [self._readable(update) for update in result]
        return result

    def _readable(self, update):
        try:
            Update.de_json(copy.deepcopy(update), self)
            return update
        except Exception as error:  # whatever the parser raised, the update cannot be handled
            update_id = update.get("update_id") if isinstance(update, dict) else None
            # The update's content is a user's message: log only its id and the parse error.
            log.warning("Skipping update %s: parsing it failed with %s: %s",
                        update_id, type(error).__name__, error)
            return {"update_id": update_id} if isinstance(update_id, int) else update


def redact_uncaught_exceptions(token):
    """Print tracebacks that reach the top level with the token replaced."""

    def hook(kind, error, trace):
        details = "".join(traceback.format_exception(kind, error, trace))
        sys.stderr.write(details.replace(token, "<token>"))

    sys.excepthook = hook


def configure_logging(settings: Settings):
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = TokenRedactor(settings.token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    redact_uncaught_exceptions(settings.token)
    # A logger's own filters run before its handlers', so the redactor never receives this traceback.
    logging.getLogger("telegram.ext").addFilter(StartFailureFilter())
    logging.getLogger("telegram.ext.Updater").addFilter(WebhookUpdateRedactor())
    # httpx logs every request URL, which contains the token, at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def build_application(settings: Settings, photo_reader: PhotoReader) -> Application:
    # A self-hosted Bot API server serves methods at <root>/bot<token>/<method> and
    # files at <root>/file/bot<token>/<path>, like api.telegram.org.
    root = settings.api_base_url or "https://api.telegram.org"
    # Replies quote the message they reply to, and are still sent if it was deleted meanwhile.
    defaults = Defaults(do_quote=True, allow_sending_without_reply=True)
    bot = UpdateSkippingBot(settings.token, base_url=f"{root}/bot", base_file_url=f"{root}/file/bot",
                            defaults=defaults,
                            request=HTTPXRequest(connection_pool_size=256, media_write_timeout=60),
                            get_updates_request=HTTPXRequest(connection_pool_size=1))
    application = (Application.builder()
                   .bot(bot)
                   .concurrent_updates(CONCURRENT_UPDATES)
                   .post_init(_on_start)
                   .post_stop(_stop_heartbeat)
                   .post_shutdown(_close_photo_reader)
                   .build())
    application.bot_data["settings"] = settings
    application.bot_data["photo_reader"] = photo_reader

    messages = filters.UpdateType.MESSAGE
    application.add_handler(CommandHandler(["start", "help"], handlers.help_command, filters=messages))
    application.add_handler(CommandHandler("emotions", handlers.emotions_command, filters=messages))
    application.add_handler(MessageHandler(messages & filters.PHOTO, handlers.photo))
    application.add_handler(MessageHandler(messages & IMAGE_DOCUMENT, handlers.photo))
    application.add_handler(MessageHandler(messages & filters.Document.ALL & filters.ChatType.PRIVATE,
                                           handlers.other_document))
    application.add_handler(MessageHandler(messages & filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL,
                                           handlers.private_other))
    application.add_error_handler(handlers.error_handler)
    return application


def run(application: Application, settings: Settings):
    """Serve updates by long polling, or by webhook when TELEGRAM_WEBHOOK_URL is set, until a stop signal."""
    if settings.webhook_url:
        path = urllib.parse.urlsplit(settings.webhook_url).path.strip("/")
        log.info("Starting webhook server on %s:%d, path /%s", settings.webhook_listen, settings.webhook_port, path)
        # NOTE: UpdateSkippingBot covers polling only. In webhook mode python-telegram-bot responds to an
        # update it cannot parse with HTTP 400 (WebhookUpdateRedactor logs its id), and Telegram retries it.
        application.run_webhook(listen=settings.webhook_listen, port=settings.webhook_port, url_path=path,
                                webhook_url=settings.webhook_url, secret_token=settings.webhook_secret,
                                allowed_updates=ALLOWED_UPDATES, stop_signals=None)
    else:
        log.info("Starting long polling")
        application.run_polling(allowed_updates=ALLOWED_UPDATES, stop_signals=None)
    log.info("Stopped")


async def _on_start(application: Application):
    me = await application.bot.get_me()
    log.info("Signed in as @%s", me.username)
    _handle_stop_signals(application)
    await _start_heartbeat(application)


def _handle_stop_signals(application: Application):
    """Stop gently on SIGTERM or SIGINT, and ignore repeats, which would drop photos already accepted.

    python-telegram-bot's own handlers raise SystemExit on every signal, so a second signal during
    the shutdown would end it early and lose the queued photos. SIGKILL still stops the bot at once.
    """
    loop = asyncio.get_running_loop()

    def on_signal(number):
        name = signal.Signals(number).name
        if application.bot_data.get("stopping"):
            log.warning("Received %s again; still finishing the photos already accepted", name)
            return
        application.bot_data["stopping"] = True
        log.info("Received %s; stopping once the photos already accepted have replies", name)
        application.stop_running()

    for number in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError):  # event loops on Windows have no signal handlers
            loop.add_signal_handler(number, on_signal, number)


async def _start_heartbeat(application: Application):
    path = application.bot_data["settings"].heartbeat_file
    # Not application.create_task: the application waits for those tasks before it stops.
    application.bot_data["heartbeat"] = asyncio.get_running_loop().create_task(
        _beat(application, pathlib.Path(path) if path else None))


async def _beat(application, path):
    """Touch the heartbeat file, and stop the bot once the Bot API rejects its token.

    When the token is revoked, python-telegram-bot (v22) ends polling for good but keeps the
    process running, so a periodic getMe finds that out. Exiting lets a restart policy or a
    person act.
    """
    beats, writable = 0, True
    while True:
        if path:
            try:
                path.write_text(f"{time.time():.0f}\n")
                writable = True
            except OSError as error:
                # Keep beating: the token check below must go on, and the health check reports the stale file.
                if writable:
                    log.warning("Cannot write the heartbeat file, will retry: %s", error)
                writable = False
        beats += 1
        if beats % TOKEN_CHECK_EVERY_BEATS == 0:
            try:
                await application.bot.get_me()
            except InvalidToken:
                log.error("The Bot API rejected the token; stopping. Check TELEGRAM_BOT_TOKEN")
                application.bot_data["updates_failed"] = True
                application.stop_running()
                return
            except TelegramError as error:
                log.warning("Checking the token failed, will retry: %s", error)
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def _stop_heartbeat(application: Application):
    task = application.bot_data.pop("heartbeat", None)
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_photo_reader(application: Application):
    await asyncio.to_thread(application.bot_data["photo_reader"].close)
