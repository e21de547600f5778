"""The real bot, run as `python -m bot`, against a fake Bot API server on 127.0.0.1."""

import asyncio
import io

import pytest
from PIL import Image

from tests.bot_process import TOKEN, start_bot, stop_bot
from tests.conftest import encode, make_collage
from tests.fake_bot_api import GROUP_CHAT, PRIVATE_CHAT



@pytest.fixture
async def bot(api, tmp_path):
    process = await start_bot(api, tmp_path)
    await api.wait_for(1, "getUpdates", timeout_s=120)
    yield process
    code, output = await stop_bot(process)
    print(output)  # shown by pytest when a test fails
    print([method for method, _ in api.calls])
    assert code == 0, output
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output


def photo_sizes(file_id, data):
    width, height = Image.open(io.BytesIO(data)).size
    return [{"file_id": f"{file_id}-small", "file_unique_id": f"{file_id}-s", "width": 90, "height": 90},
            {"file_id": file_id, "file_unique_id": file_id, "width": width, "height": height, "file_size": len(data)}]


def image_document(file_id, data, name, mime_type):
    return {"file_id": file_id, "file_unique_id": file_id, "file_name": name, "mime_type": mime_type,
            "file_size": len(data)}


def assert_annotated_reply(call, chat, message_id, faces):
    method, params = call
    assert method == "sendPhoto"
    assert int(params["chat_id"]) == chat["id"]
    assert params["reply_parameters"]["message_id"] == message_id
    assert params["reply_parameters"]["allow_sending_without_reply"] is True
    image = Image.open(io.BytesIO(params["photo"]))
    assert image.format == "JPEG"
    image.load()
    caption = params["caption"]
    for number in range(1, faces + 1):
        assert f"{number}. " in caption
    assert f"{faces + 1}. " not in caption
    return caption


@pytest.mark.parametrize("chat", [PRIVATE_CHAT, GROUP_CHAT], ids=["private", "group"])
async def test_photo_gets_annotated_reply(api, bot, chat, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    message_id = api.push_message(chat, photo=photo_sizes("portrait", portrait_bytes))

    [reply] = await api.wait_for(1, "sendPhoto")

    caption = assert_annotated_reply(reply, chat, message_id, faces=1)
    assert any(label in caption for label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
    assert api.sent("sendChatAction")


@pytest.mark.parametrize("chat", [PRIVATE_CHAT, GROUP_CHAT], ids=["private", "group"])
async def test_image_document_gets_annotated_reply(api, bot, chat):
    collage = encode(make_collage(), "PNG")
    api.add_file("collage", collage)
    message_id = api.push_message(chat, document=image_document("collage", collage, "friends.png", "image/png"))

    [reply] = await api.wait_for(1, "sendPhoto")

    caption = assert_annotated_reply(reply, chat, message_id, faces=3)
    assert caption.startswith("3 faces: ")


async def test_non_image_document_gets_polite_reply(api, bot):
    api.add_file("notes", b"shopping list\n")
    message_id = api.push_message(PRIVATE_CHAT, document=image_document("notes", b"x" * 14, "notes.txt", "text/plain"))

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert params["reply_parameters"]["message_id"] == message_id
    assert "not an image" in params["text"]
    assert not api.sent("getFile")


async def test_corrupt_image_gets_classifier_message(api, bot, portrait_bytes):
    broken = portrait_bytes[: len(portrait_bytes) // 3]
    api.add_file("broken", broken)
    message_id = api.push_message(PRIVATE_CHAT, document=image_document("broken", broken, "broken.jpg", "image/jpeg"))

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert params["reply_parameters"]["message_id"] == message_id
    assert params["text"].startswith("I can't read this image.")
    assert "truncated" in params["text"] or "damaged" in params["text"]


async def test_unreadable_reply_waits_out_flood_control(api, bot, portrait_bytes):
    broken = portrait_bytes[: len(portrait_bytes) // 3]
    api.add_file("broken", broken)
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    message_id = api.push_message(GROUP_CHAT, document=image_document("broken", broken, "broken.jpg", "image/jpeg"))

    replies = await api.wait_for(2, "sendMessage")

    assert replies[1][1]["reply_parameters"]["message_id"] == message_id
    assert replies[1][1]["text"].startswith("I can't read this image.")


async def test_document_named_only_by_extension_is_read(api, bot, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    document = image_document("portrait", portrait_bytes, ".jpg", "application/octet-stream")
    message_id = api.push_message(PRIVATE_CHAT, document=document)

    [reply] = await api.wait_for(1, "sendPhoto")

    assert_annotated_reply(reply, PRIVATE_CHAT, message_id, faces=1)


async def test_photo_without_face_says_so(api, bot, faceless_bytes):
    api.add_file("landscape", faceless_bytes)
    message_id = api.push_message(GROUP_CHAT, photo=photo_sizes("landscape", faceless_bytes))

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert params["reply_parameters"]["message_id"] == message_id
    assert "couldn't find a face" in params["text"]
    assert not api.sent("sendPhoto")


async def test_bot_keeps_serving_after_bad_input(api, bot, portrait_bytes):
    junk = b"GIF89a" + bytes(range(256)) * 4
    api.add_file("empty", b"")
    api.add_file("junk", junk)
    api.add_file("portrait", portrait_bytes)
    api.push_message(PRIVATE_CHAT, document=image_document("empty", b"", "empty.png", "image/png"))
    api.push_message(PRIVATE_CHAT, document=image_document("junk", junk, "junk.gif", "image/gif"))
    message_id = api.push_message(PRIVATE_CHAT, photo=photo_sizes("portrait", portrait_bytes))

    [reply] = await api.wait_for(1, "sendPhoto")

    assert_annotated_reply(reply, PRIVATE_CHAT, message_id, faces=1)
    replies = await api.wait_for(2, "sendMessage")
    assert all("sorry" not in params["text"].lower() for _, params in replies)


async def test_malformed_update_is_skipped(api, bot, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    api.push_update(message={"message_id": 1, "date": "soon", "chat": PRIVATE_CHAT})
    api.push_update(message="not a message")
    message_id = api.push_message(PRIVATE_CHAT, photo=photo_sizes("portrait", portrait_bytes))

    [reply] = await api.wait_for(1, "sendPhoto")

    assert_annotated_reply(reply, PRIVATE_CHAT, message_id, faces=1)
    polls = len(api.sent("getUpdates"))
    await asyncio.sleep(1)
    # Idle long polling, not a retry loop: the fake server keeps each poll open for up to 0.5 s.
    assert len(api.sent("getUpdates")) - polls <= 4


async def test_reply_waits_out_flood_control(api, bot, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    api.fail_next("getFile", 502, "Bad Gateway")
    api.fail_next("sendPhoto", 429, "Too Many Requests: retry after 1", retry_after=1)
    message_id = api.push_message(GROUP_CHAT, photo=photo_sizes("portrait", portrait_bytes))

    replies = await api.wait_for(2, "sendPhoto")

    assert_annotated_reply(replies[1], GROUP_CHAT, message_id, faces=1)
    assert len(api.sent("getFile")) == 2
    assert not api.sent("sendMessage")


async def test_rejected_download_gets_plain_reply(api, bot, portrait_bytes):
    api.fail_next("getFile", 400, "Bad Request: invalid file_id")
    message_id = api.push_message(PRIVATE_CHAT, photo=photo_sizes("gone", portrait_bytes))

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert params["reply_parameters"]["message_id"] == message_id
    assert params["text"].startswith("Telegram would not give me this file")
    assert len(api.sent("getFile")) == 1


async def test_bad_request_is_not_retried(api, bot, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    api.fail_next("getFile", 400, "Bad Request: file is too big")
    message_id = api.push_message(PRIVATE_CHAT, document=image_document("portrait", b"", "big.jpg", "image/jpeg"))

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert params["reply_parameters"]["message_id"] == message_id
    assert "up to 20 MB" in params["text"]
    assert len(api.sent("getFile")) == 1


async def test_busy_chat_does_not_starve_others(api, bot, portrait_bytes, faceless_bytes):
    api.add_file("landscape", faceless_bytes)
    api.add_file("portrait", portrait_bytes)
    for _ in range(150):  # far more queued photos than a cap of 64 handler tasks would let in
        api.push_message(PRIVATE_CHAT, photo=photo_sizes("landscape", faceless_bytes))
    await api.wait_for(1, "sendMessage")
    message_id = api.push_message(GROUP_CHAT, photo=photo_sizes("portrait", portrait_bytes))

    [reply] = await api.wait_for(1, "sendPhoto")

    assert_annotated_reply(reply, GROUP_CHAT, message_id, faces=1)
    assert len(api.sent("sendMessage")) < 20
    await api.wait_for(150, "sendMessage", timeout_s=120)


async def test_emotions_command_reads_replied_photo(api, bot, portrait_bytes):
    api.add_file("portrait", portrait_bytes)
    photo_message = {"message_id": 77, "date": 0, "chat": GROUP_CHAT, "photo": photo_sizes("portrait", portrait_bytes)}
    message_id = api.push_message(GROUP_CHAT, text="/emotions", reply_to_message=photo_message,
                                  entities=[{"type": "bot_command", "offset": 0, "length": 9}])

    [reply] = await api.wait_for(1, "sendPhoto")

    assert_annotated_reply(reply, GROUP_CHAT, message_id, faces=1)


async def test_help_command(api, bot):
    api.push_message(PRIVATE_CHAT, text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])

    [(_, params)] = await api.wait_for(1, "sendMessage")

    assert "/emotions" in params["text"]
    assert "privacy" in params["text"]


async def test_private_text_or_sticker_gets_hint(api, bot):
    sticker = {"file_id": "s1", "file_unique_id": "s1", "type": "regular", "width": 512, "height": 512,
               "is_animated": False, "is_video": False}
    text_id = api.push_message(PRIVATE_CHAT, text="hello there")
    sticker_id = api.push_message(PRIVATE_CHAT, sticker=sticker)

    hints = await api.wait_for(2, "sendMessage")

    assert sorted(params["reply_parameters"]["message_id"] for _, params in hints) == [text_id, sticker_id]
    assert all("Send me a photo" in params["text"] for _, params in hints)


async def test_replies_keep_order_within_chat(api, bot, portrait_bytes, faceless_bytes):
    api.add_file("portrait", portrait_bytes)
    api.add_file("landscape", faceless_bytes)
    first = api.push_message(PRIVATE_CHAT, photo=photo_sizes("portrait", portrait_bytes))
    second = api.push_message(PRIVATE_CHAT, photo=photo_sizes("landscape", faceless_bytes))

    await api.wait_for(1, "sendPhoto")
    await api.wait_for(1, "sendMessage")

    replies = [params["reply_parameters"]["message_id"] for _, params in api.sent("sendPhoto", "sendMessage")]
    assert replies == [first, second]


def test_long_caption_fits_utf16_limit():
    from bot import replies
    from classifier import EMOTIONS, FaceEmotion

    probabilities = dict(zip(EMOTIONS, [0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.1]))
    faces = [FaceEmotion((0, 0, 10, 10), 0.9, "happy", 0.6, probabilities) for _ in range(120)]

    caption = replies.caption(faces)

    assert len(caption.encode("utf-16-le")) // 2 <= 1024
    assert caption.endswith("more")


def test_too_large_advice_fits_what_was_sent():
    from bot import replies

    assert replies.too_large(25.0, 20).endswith("Send it as a photo instead.")
    assert "as a photo" not in replies.too_large(25.0, 20, is_photo=True)


async def test_error_handler_skips_message_without_chat():
    from unittest import mock

    from telegram import Update

    from bot import handlers

    update = mock.MagicMock(spec=Update)
    update.update_id = 7
    update.effective_chat = None
    update.effective_message.reply_text = mock.AsyncMock()
    context = mock.MagicMock(error=AttributeError("'NoneType' object has no attribute 'type'"))

    await handlers.error_handler(update, context)

    update.effective_message.reply_text.assert_not_awaited()
