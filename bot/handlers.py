"""Telegram handlers: commands, photos, images sent as files, and everything else."""

import asyncio
import contextlib
import datetime
import logging
import time
import warnings

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning
from telegram.ext import ContextTypes

from bot import replies
from classifier import ImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}
# Telegram shows a chat action for 5 seconds; repeat it while a photo is being worked on.
CHAT_ACTION_INTERVAL_S = 4.5
# A photo's download and reply are tried again after flood control or a network failure.
RETRIES = 3
MAX_FLOOD_WAIT_S = 120


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain what the bot does and how to use it in groups."""
    message = update.effective_message
    await _retrying(lambda: message.reply_text(replies.HELP), "reply", message)


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Analyse a photo, or an image sent as a file."""
    await _analyse(update.effective_message, update.effective_message, context)


async def emotions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Analyse the photo that /emotions replies to: the way to use the bot in privacy mode."""
    message = update.effective_message
    target = message.reply_to_message
    if target is None or _image_of(target) is None:
        await _reply(message, replies.NOTHING_TO_READ)
        return
    await _analyse(message, target, context)


async def private_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Point any other private message (text, unknown command, sticker, voice, video) at what the bot does."""
    await _reply(update.effective_message, replies.SEND_A_PHOTO)


async def other_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply to a file that is not an image; registered for private chats only, so groups stay quiet."""
    await _reply(update.effective_message, replies.NOT_AN_IMAGE)


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log an error that a handler did not catch, and tell the user if there is one to tell."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("update %s failed: %s", update_id, context.error, exc_info=context.error)
    # A message without a chat cannot get a reply. Telegram should send none, but a malformed update can.
    if isinstance(update, Update) and update.effective_message and update.effective_chat:
        with contextlib.suppress(TelegramError):
            await update.effective_message.reply_text(replies.FAILED)


def is_image_document(message: Message) -> bool:
    document = message.document
    if document is None:
        return False
    if (document.mime_type or "").startswith("image/"):
        return True
    # The same test as python-telegram-bot's FileExtension filter, which routes such files here:
    # the name ends with the extension, so a file named just ".jpg" counts too.
    return (document.file_name or "").lower().endswith(tuple(IMAGE_EXTENSIONS))


def _image_of(message: Message):
    """Return (file id, size in bytes) of the image a message carries, or None."""
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size
    if is_image_document(message):
        return message.document.file_id, message.document.file_size
    return None


async def _analyse(reply_to: Message, source: Message, context: ContextTypes.DEFAULT_TYPE) -> None:
    settings = context.bot_data["settings"]
    reader = context.bot_data["photo_reader"]
    file_id, size = _image_of(source)
    chat_id = reply_to.chat_id
    limit_bytes = settings.max_file_mb * 1024 * 1024
    async with reader.chat_turn(chat_id):
        if size and size > limit_bytes:
            await _reply(reply_to, replies.too_large(size / 1024 / 1024, settings.max_file_mb, bool(source.photo)))
            return
        await _download_read_reply(reply_to, source, file_id, size, context)


async def _download_read_reply(reply_to, source, file_id, size, context):
    settings = context.bot_data["settings"]
    chat_id = reply_to.chat_id
    started = time.perf_counter()
    action = asyncio.create_task(_keep_chat_action(context, chat_id))
    reader = context.bot_data["photo_reader"]
    try:
        async with reader.slot():
            try:
                data = await _retrying(lambda: _download(context.bot, file_id), "download", source,
                                       repeat_timeouts=True)
            except BadRequest as error:
                # The official Bot API refuses files over 20 MB with "file is too big".
                if "too big" in error.message.lower():
                    log.info("chat %s message %s: file too big to download", chat_id, source.message_id)
                    await _reply(reply_to, replies.too_large(size / 1024 / 1024 if size else None,
                                                             settings.max_file_mb, bool(source.photo)))
                    return
                # Permanent for this file id (such as "invalid file_id"), so neither a retry nor a traceback helps.
                log.warning("chat %s message %s: download rejected: %s", chat_id, source.message_id, error.message)
                await _reply(reply_to, replies.NOT_DOWNLOADED)
                return
            try:
                result = await reader.read(data)
            except ImageError as error:
                log.info("chat %s message %s: unreadable image (%s)", chat_id, source.message_id, error.kind)
                await _reply(reply_to, replies.unreadable(str(error)))
                return
    finally:
        action.cancel()

    if result.jpeg is None:
        await _reply(reply_to, replies.NO_FACE, source)
    else:
        caption = replies.caption(result.faces)
        await _retrying(lambda: reply_to.reply_photo(result.jpeg, caption=caption, do_quote=True), "reply", source)
    log.info("chat %s message %s: %d face(s), %d ms analysis, %d ms total", chat_id, source.message_id,
             len(result.faces), result.milliseconds, (time.perf_counter() - started) * 1000)


async def _download(bot, file_id):
    telegram_file = await bot.get_file(file_id)
    return bytes(await telegram_file.download_as_bytearray())


async def _reply(message, text, source=None):
    """Reply to `message` with `text`, quoting it, and wait out flood control as `_retrying` does."""
    await _retrying(lambda: message.reply_text(text, do_quote=True), "reply", source or message)


async def _retrying(call, action, source, repeat_timeouts=False):
    """Await `call()`, calling it again after flood control or a network failure, up to RETRIES times.

    A timed-out request may have reached Telegram, so it is repeated only when `repeat_timeouts` is
    set, for a download; a repeated message could appear twice.
    """
    for retry in range(RETRIES + 1):
        try:
            return await call()
        except RetryAfter as error:
            wait_s = _retry_after_seconds(error)
            if retry == RETRIES or wait_s > MAX_FLOOD_WAIT_S:
                raise
            reason = error
        except BadRequest:
            raise  # a subclass of NetworkError, but permanent: a file too big, an invalid file id
        except NetworkError as error:
            if retry == RETRIES or (isinstance(error, TimedOut) and not repeat_timeouts):
                raise
            wait_s, reason = 2.0 ** retry, error
        log.warning("chat %s message %s: %s failed (%s), trying again in %.0f s",
                    source.chat_id, source.message_id, action, reason, wait_s)
        await asyncio.sleep(wait_s)


def _retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        # python-telegram-bot 22 warns that retry_after will become a timedelta; either is read here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, datetime.timedelta) else float(wait)


async def _keep_chat_action(context, chat_id):
    with contextlib.suppress(TelegramError):
        while True:
            await context.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
            await asyncio.sleep(CHAT_ACTION_INTERVAL_S)
