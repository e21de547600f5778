"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests of the real bot.

It serves the methods the bot calls, at `/bot<token>/<method>`, and file downloads at
`/file/bot<token>/<path>`, like api.telegram.org, and records every call so tests can
inspect what the bot sent.
"""

import asyncio
import itertools
import json
import time

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Emotion", "username": "emotion_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
USER = {"id": 1001, "is_bot": False, "first_name": "Ada"}
MAX_POLL_WAIT_S = 0.5


class FakeBotApi:
    def __init__(self, token):
        self.token = token
        self.calls = []  # (method, parameters) in arrival order
        self.files = {}  # file_id -> bytes
        self.updates = []
        self._new_update = asyncio.Event()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(10_000)
        self._runner = None
        self.port = None
        self.on_download = None  # called with the file id when the bot downloads a file
        self._failures = {}  # method -> [(HTTP status, response body)] returned before the real result

    async def start(self):
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        await self._runner.cleanup()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    # What tests call.

    def add_file(self, file_id, data):
        self.files[file_id] = data

    def push_message(self, chat, **content):
        """Queue an update with a new message in `chat`; return the message id."""
        message_id = next(self._message_ids)
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": USER, **content}
        self.updates.append({"update_id": next(self._update_ids), "message": message})
        self._new_update.set()
        return message_id

    def push_update(self, **content):
        """Queue an update with any content, well-formed or not; return its update id."""
        update_id = next(self._update_ids)
        self.updates.append({"update_id": update_id, **content})
        self._new_update.set()
        return update_id

    def fail_next(self, method, status, description, **parameters):
        """Return an error for the next call of `method`, as the Bot API does; each call of this queues one more."""
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        self._failures.setdefault(method, []).append((status, body))

    def sent(self, *methods):
        return [(method, params) for method, params in self.calls if method in methods]

    async def wait_for(self, count, *methods, timeout_s=60):
        """Wait until the bot has made `count` calls of the given methods; return them."""
        deadline = time.monotonic() + timeout_s
        while len(self.sent(*methods)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} call(s) of {methods}, got {self.sent(*methods)}")
            await asyncio.sleep(0.05)
        return self.sent(*methods)

    # The server side.

    async def _method(self, request):
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _parameters(request)
        self.calls.append((method, params))
        if self._failures.get(method):
            status, body = self._failures[method].pop(0)
            return web.json_response(body, status=status)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                                     status=404)
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request):
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].split("/")[-1]
        if file_id not in self.files:
            return web.Response(status=404)
        if self.on_download:
            self.on_download(file_id)
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    async def _api_getMe(self, params):
        return BOT_USER

    async def _api_deleteWebhook(self, params):
        return True

    async def _api_setWebhook(self, params):
        return True

    async def _api_sendChatAction(self, params):
        return True

    async def _api_getUpdates(self, params):
        offset = int(params.get("offset") or 0)
        wait_s = min(float(params.get("timeout") or 0), MAX_POLL_WAIT_S)
        pending = [u for u in self.updates if u["update_id"] >= offset]
        if not pending and wait_s > 0:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
            pending = [u for u in self.updates if u["update_id"] >= offset]
        return pending

    async def _api_getFile(self, params):
        file_id = params["file_id"]
        if file_id not in self.files:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: invalid file_id"}, status=400)
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(self.files[file_id]),
                "file_path": f"photos/{file_id}"}

    async def _api_sendMessage(self, params):
        return self._message(params, text=params.get("text", ""))

    async def _api_sendPhoto(self, params):
        return self._message(params, photo=[{"file_id": "sent", "file_unique_id": "sent", "width": 1, "height": 1}],
                             caption=params.get("caption", ""))

    def _message(self, params, **content):
        chat_id = int(params["chat_id"])
        return {"message_id": next(self._message_ids), "date": int(time.time()), "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"}, **content}


async def _parameters(request):
    """Read a Bot API call's parameters: JSON, form or multipart; nested objects are JSON strings."""
    if request.content_type == "application/json":
        return await request.json()
    params = {}
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = value.file.read()
        else:
            try:
                params[key] = json.loads(value) if value[:1] in "{[" else value
            except json.JSONDecodeError:
                params[key] = value
    return params


PRIVATE_CHAT = {"id": 1001, "type": "private", "first_name": "Ada"}
GROUP_CHAT = {"id": -100500, "type": "supergroup", "title": "Friends"}
