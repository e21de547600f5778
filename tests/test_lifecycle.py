"""Stopping, webhook mode and settings errors of the real bot process."""

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest
from PIL import Image

from tests.bot_process import TOKEN, start_bot, stop_bot, wait_for_exit
from tests.conftest import ROOT, encode, make_collage
from tests.fake_bot_api import PRIVATE_CHAT, USER, FakeBotApi
from tests.test_bot import assert_annotated_reply, photo_sizes

WEBHOOK_SECRET = "test_secret-123"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_repeated_sigterm_during_classification_still_replies(api, tmp_path):
    # A 24-megapixel group photo keeps the classifier busy for a while after the download.
    big = make_collage((900, 700, 500, 300)).resize((6000, 3000), Image.Resampling.BILINEAR)
    data = encode(big, quality=90)
    process = await start_bot(api, tmp_path)
    await api.wait_for(1, "getUpdates", timeout_s=120)
    api.add_file("big", data)
    downloaded = asyncio.Event()
    api.on_download = lambda file_id: downloaded.set()
    message_id = api.push_message(PRIVATE_CHAT, photo=photo_sizes("big", data))
    await asyncio.wait_for(downloaded.wait(), 60)

    process.send_signal(signal.SIGTERM)  # while the photo is analysed
    await asyncio.sleep(0.5)
    code, output = await stop_bot(process, timeout_s=120)  # a second SIGTERM

    assert code == 0, output
    [reply] = api.sent("sendPhoto")
    assert_annotated_reply(reply, PRIVATE_CHAT, message_id, faces=4)
    assert output.index("Application is stopping") < output.index("4 face(s)")


async def wait_until_listening(port, timeout_s=120):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_webhook_update_with_secret_is_answered(api, tmp_path, portrait_bytes):
    port = free_port()
    process = await start_bot(api, tmp_path, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/emotion-hook",
                              TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_LISTEN="127.0.0.1",
                              WEBHOOK_PORT=str(port))
    try:
        await wait_until_listening(port)
        [(_, webhook)] = await api.wait_for(1, "setWebhook")
        assert webhook["url"] == f"http://127.0.0.1:{port}/emotion-hook"
        assert webhook["secret_token"] == WEBHOOK_SECRET
        api.add_file("portrait", portrait_bytes)
        update = {"update_id": 1, "message": {"message_id": 5, "date": 0, "chat": PRIVATE_CHAT, "from": USER,
                                              "photo": photo_sizes("portrait", portrait_bytes)}}
        url = f"http://127.0.0.1:{port}/emotion-hook"

        async with aiohttp.ClientSession() as session:
            forged = await session.post(url, json={**update, "update_id": 2},
                                        headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            unsigned = await session.post(url, json={**update, "update_id": 3})
            signed = await session.post(url, json=update,
                                        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
            malformed = await session.post(url, json={"update_id": 4, "message": {
                "message_id": 6, "date": "soon", "chat": PRIVATE_CHAT, "text": "words only the sender may read"}},
                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})

        assert forged.status == 403
        assert unsigned.status == 403
        assert signed.status == 200
        assert malformed.status == 400
        [reply] = await api.wait_for(1, "sendPhoto")
        assert_annotated_reply(reply, PRIVATE_CHAT, 5, faces=1)
        await asyncio.sleep(1)
        assert len(api.sent("sendPhoto")) == 1  # the refused updates were not handled
    finally:
        code, output = await stop_bot(process)
    assert code == 0, output
    assert TOKEN not in output
    assert "Webhook update 4 rejected with HTTP 400" in output
    assert "words only the sender may read" not in output


@pytest.mark.parametrize("environment, message", [
    ({}, "TELEGRAM_BOT_TOKEN is not set"),
    ({"TELEGRAM_BOT_TOKEN": "paste-your-token-here"}, "TELEGRAM_BOT_TOKEN is invalid"),
    ({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_URL": "https://example.org/hook"},
     "TELEGRAM_WEBHOOK_SECRET is required"),
    ({"TELEGRAM_BOT_TOKEN": "1:x", "INFERENCE_WORKERS": "many"}, "INFERENCE_WORKERS='many' is not a valid int"),
    ({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE_URL": "http://[::1"}, "is not a valid URL"),
    ({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE_URL": "http://127.0.0.1:99999"}, "is not a valid URL"),
    ({"TELEGRAM_BOT_TOKEN": "1:x", "HEARTBEAT_FILE": "/nonexistent/heartbeat"}, "cannot be written"),
], ids=["no-token", "placeholder-token", "webhook-without-secret", "bad-number", "bad-url", "bad-port",
        "heartbeat-not-writable"])
def test_settings_errors_are_plain(tmp_path, environment, message):
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **environment})

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "paste-your-token-here" not in result.stderr


async def test_unwritable_heartbeat_keeps_bot_running(api, tmp_path):
    folder = tmp_path / "health"
    folder.mkdir()
    process = await start_bot(api, tmp_path, HEARTBEAT_FILE=str(folder / "heartbeat"))
    await api.wait_for(1, "getUpdates", timeout_s=120)
    (folder / "heartbeat").unlink()
    folder.rmdir()
    await asyncio.sleep(12)  # more than one heartbeat interval

    code, output = await stop_bot(process)

    assert code == 0, output
    assert "Cannot write the heartbeat file" in output
    assert "Stopped" in output


def test_unreachable_api_is_one_line(tmp_path):
    environment = {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{free_port()}"}

    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **environment})

    assert result.returncode == 1
    assert "Cannot start the bot" in result.stderr
    assert "Check the network and TELEGRAM_API_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_dotenv_reads_bom_quotes_and_comments(tmp_path, monkeypatch):
    from bot.__main__ import load_dotenv

    env_file = tmp_path / ".env"
    env_file.write_text("TELEGRAM_BOT_TOKEN=123:abc  # from @BotFather\nLOG_LEVEL='DEBUG' # quoted\n"
                        "TELEGRAM_WEBHOOK_SECRET=a#b\n", encoding="utf-8-sig")
    for key in ("TELEGRAM_BOT_TOKEN", "LOG_LEVEL", "TELEGRAM_WEBHOOK_SECRET"):
        monkeypatch.setenv(key, "")  # so that monkeypatch removes what load_dotenv sets
        monkeypatch.delenv(key)

    load_dotenv(env_file)

    assert os.environ["TELEGRAM_BOT_TOKEN"] == "123:abc"
    assert os.environ["LOG_LEVEL"] == "DEBUG"
    assert os.environ["TELEGRAM_WEBHOOK_SECRET"] == "a#b"


async def test_rejected_token_exits_without_leaking_it(tmp_path):
    api = await FakeBotApi("999:other-token").start()  # returns 401 Unauthorized for our token
    try:
        process = await start_bot(api, tmp_path)
        code, output = await wait_for_exit(process)
    finally:
        await api.stop()

    assert code == 1
    assert "rejected the token" in output
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output


def test_token_redactor_hides_token_in_messages_and_tracebacks():
    import logging

    from bot.app import TokenRedactor

    token = "42:secret-value"
    try:
        raise RuntimeError(f"request to https://api.example/bot{token}/getMe failed")
    except RuntimeError as error:
        record = logging.LogRecord("test", logging.ERROR, __file__, 1, "failed: %s (%d)", (token, 3),
                                   (type(error), error, error.__traceback__))

    TokenRedactor(token).filter(record)

    text = logging.Formatter().format(record)
    assert token not in text
    assert "failed: <token> (3)" in text
    assert "RuntimeError" in text


def test_token_redactor_survives_mismatched_arguments():
    import logging

    from bot.app import TokenRedactor

    token = "42:secret-value"
    record = logging.LogRecord("library", logging.WARNING, __file__, 1, "two values %s %s", (token,), None)

    TokenRedactor(token).filter(record)

    text = logging.Formatter().format(record)
    assert token not in text
    assert "two values %s %s" in text
    assert "do not fit it" in text
