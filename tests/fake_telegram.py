"""A fake Telegram Bot API server for tests: real Bot API JSON over real HTTP.

The bot under test talks to it exactly as it talks to Telegram (aiogram with
``TelegramAPIServer.from_base(fake.base_url)``); the test plays the users
through a synchronous API. The server runs in its own thread and event loop,
so tests need no asyncio.

A conversation test reads like the chat it checks::

    def test_start_then_pick_style(fake_tg, bot):
        alice = fake_tg.add_user(first_name="Alice", language_code="en")
        sent = fake_tg.send_text(alice, "/start")
        menu = fake_tg.wait_for(chat_id=alice.id, text="Send me a photo", after=sent)
        assert "Van Gogh" in [b["text"] for b in menu.buttons]

        sent = fake_tg.send_photo(alice, jpeg_bytes)
        styles = fake_tg.wait_for(chat_id=alice.id, text="Pick a style", after=sent)
        press = fake_tg.press(alice, styles, text="Van Gogh")   # or callback_data="..."
        press.answer(timeout=2)        # fails unless the bot answered the query; returns its params
        result = fake_tg.wait_for(lambda m: m.kind == "photo", chat_id=alice.id, timeout=60)
        assert result.image().size[0] <= 256
        assert fake_tg.errors() == []                           # no Bot API call was refused

``wait_for`` matches the *current* state of the bot's messages (edits count),
so a progress message edited into "Done" is found by ``text="Done"``; ``after``
(a ``mark()``, or anything returned by ``send_*``/``press``) skips what was
already there before that moment.

Behaviour copied from Telegram because bots trip on it: message ids count per
chat and are shared by user and bot; text/caption are parsed by parse_mode and
bad HTML/MarkdownV2 is refused ("can't parse entities"); edits that change
nothing are refused ("message is not modified"); getFile refuses files over
20 MB; photos get several sizes (real thumbnails, longest side at most 2560);
photo uploads over 10 MB or with bad dimensions are refused; callback data
over 64 bytes is refused; a second getUpdates ends the first with 409;
sendMediaGroup takes 2 to 10 items, documents only with documents, a caption
per item and no keyboard, all or nothing.

Stricter still, where real bots break (each switchable per test):
- ``fault(method, kind)``: Telegram's front end answering an HTML 502/413
  page (``html_502``, ``html_413``), a connection dropped before the request
  was taken (``drop``), or after it was carried out, so the bot never hears
  that its message went out (``drop_after``);
- ``flood_control()``: a rate model per chat (a burst of 3 in 3 s) and per
  group (20 a minute), answering 429 with a retry_after that grows while the
  bot keeps pushing;
- callback queries expire ``callback_ttl_s`` after the press (10 s), and
  ``press(..., inaccessible=True)`` carries an InaccessibleMessage (date 0),
  as Telegram sends for messages it no longer shows the bot;
- groups and forum topics (``add_group``), privacy mode (the bot then only
  gets commands meant for it, replies to its messages and service messages),
  service messages (``send_service``), albums (``media_group_id``), other
  bots (``add_user(is_bot=True)``);
- setWebhook refuses non-https URLs and ports other than 80, 88, 443 and
  8443, unless the fake plays a Local Bot API server (``local=True``), which
  also hands out local file paths and files up to 2 GB.
"""
from __future__ import annotations

import asyncio
import html
import io
import itertools
import json
import math
import mimetypes
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from aiohttp import web
from PIL import Image

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuv"

DOWNLOAD_LIMIT = 20 * 1024 * 1024      # getFile refuses bigger files
LOCAL_DOWNLOAD_LIMIT = 2000 * 1024 * 1024   # a Local Bot API server's limit
WEBHOOK_PORTS = {80, 88, 443, 8443}
# Methods that put something into a chat: what flood control counts.
FLOOD_COUNTED = {"sendmessage", "sendphoto", "senddocument", "copymessage", "editmessagetext",
                 "editmessagecaption", "editmessagereplymarkup", "sendmediagroup"}
FAULT_KINDS = {"html_502", "html_413", "drop", "drop_after"}
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
UPLOAD_LIMIT = 50 * 1024 * 1024
PHOTO_MAX_SIDE = 2560                  # Telegram stores photos no bigger than this
THUMB_SIDES = (90, 320, 800, 1280)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
# Telegram leaves these out unless allowed_updates asks for them.
OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}


class ApiError(Exception):
    """A Bot API error answer: {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


@dataclass
class User:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "en"
    last_name: str | None = None
    is_bot: bool = False

    def to_json(self) -> dict:
        out = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def chat_json(self) -> dict:
        out = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class Group:
    """A group (a supergroup, as every group with a topic is) the bot is a member of."""
    id: int
    title: str
    forum: bool = False
    privacy: bool = True            # @BotFather's default: the bot sees only what is meant for it
    topics: set = field(default_factory=set)

    def chat_json(self) -> dict:
        out = {"id": self.id, "type": "supergroup", "title": self.title}
        if self.forum:
            out["is_forum"] = True
        return out


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    kind: str                      # photo, document, sticker
    data: bytes | None             # None: declared only (a huge file the test does not hold)
    size: int
    path: str
    photo_sizes: list | None = None    # the whole PhotoSize array this file belongs to


@dataclass(eq=False)
class ChatMessage:
    """One message in a chat, sent by the bot (sender None) or by a test user.

    text/caption are what the user sees (markup parsed by parse_mode);
    raw_text/raw_caption are what the bot sent. The record is live: edits and
    deletes change it in place, and history keeps every state.
    """
    chat_id: int
    message_id: int
    sender: User | None
    method: str
    kind: str = "text"             # text, photo, document, sticker
    text: str | None = None
    raw_text: str | None = None
    caption: str | None = None
    raw_caption: str | None = None
    parse_mode: str | None = None
    entities: list | None = None
    reply_markup: dict | None = None
    photo: list | None = None
    document: dict | None = None
    sticker: dict | None = None
    file_bytes: bytes | None = None
    file_name: str | None = None
    reply_to: int | None = None
    thread_id: int | None = None   # the forum topic it is in
    media_group_id: str | None = None
    service: dict | None = None    # new_chat_members, pinned_message, ...: a service message's fields
    deleted: bool = False
    edit_date: int | None = None
    date: int = field(default_factory=lambda: int(time.time()))
    time: float = field(default_factory=time.monotonic)
    history: list = field(default_factory=list)
    seq: int = 0                   # bumped on every change; see FakeTelegram.mark()

    @property
    def from_bot(self) -> bool:
        return self.sender is None

    @property
    def edits(self) -> list:
        return self.history[1:]

    @property
    def buttons(self) -> list[dict]:
        """The inline keyboard's buttons, row after row, as Bot API dicts."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def button(self, text: str) -> dict:
        """The inline button whose text contains `text`."""
        found = [b for b in self.buttons if text in b.get("text", "")]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} buttons with {text!r} in {[b.get('text') for b in self.buttons]}")
        return found[0]

    def image(self) -> Image.Image:
        assert self.file_bytes is not None, f"message {self.message_id} carries no file"
        return Image.open(io.BytesIO(self.file_bytes))

    def _state(self, method: str) -> dict:
        return {"time": time.monotonic(), "method": method, "text": self.text, "caption": self.caption,
                "parse_mode": self.parse_mode, "reply_markup": self.reply_markup}

    def __repr__(self) -> str:
        who = "bot" if self.from_bot else f"user {self.sender.id}"
        shown = self.text if self.text is not None else self.caption
        flags = " deleted" if self.deleted else ""
        return f"<{self.kind} #{self.message_id} in {self.chat_id} from {who}{flags}: {shown!r}>"


@dataclass
class Call:
    """One Bot API request as the server saw it."""
    method: str
    params: dict                   # as sent: form values are strings, JSON bodies keep their types
    files: dict                    # form field -> (filename, size in bytes)
    time: float                    # time.monotonic() when it arrived
    end: float | None = None
    status: int | None = None
    ok: bool | None = None
    description: str | None = None
    injected: bool = False         # the error came from fail(), not from the request


@dataclass
class Press:
    """A callback button press; answer() waits for the bot's answerCallbackQuery."""
    id: str
    user: User
    message: ChatMessage
    data: str
    seq: int
    _fake: "FakeTelegram"
    time: float = field(default_factory=time.monotonic)

    def answer(self, timeout: float = 5.0) -> dict:
        """The answerCallbackQuery parameters (text, show_alert, ...), as the bot sent them."""
        return self._fake._wait_answer(self.id, timeout)


# --- parsing what the bot sends ---------------------------------------------------------

def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} is empty" if value in (None, "") else f"invalid {name} specified") from None


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _json(value: Any, name: str) -> Any:
    # Form bodies carry objects as JSON strings; JSON bodies carry them as they are.
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise bad_request(f"can't parse {name} JSON object") from None


class _HtmlText(HTMLParser):
    """Telegram's HTML subset: a known tag set, strict nesting, four named entities."""
    TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
            "code", "pre", "blockquote", "tg-emoji"}
    NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)
        self.source, self.out, self.open = source, [], []

    def _fail(self, what: str):
        line, col = self.getpos()
        offset = len("\n".join(self.source.split("\n")[:line - 1]).encode()) + (line > 1) + col
        raise bad_request(f"can't parse entities: {what} at byte offset {offset}")

    def handle_starttag(self, tag, attrs):
        if tag not in self.TAGS:
            self._fail(f'Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._fail(f'Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self._fail(f'Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data):
        if "<" in data:      # a bare "<" that is not a tag: Telegram refuses it
            self._fail('Unsupported start tag ""')
        self.out.append(data)

    def handle_entityref(self, name):
        if name not in self.NAMED:
            self._fail(f'Unsupported HTML entity "&{name};"')
        self.out.append(self.NAMED[name])

    def handle_charref(self, name):
        self.out.append(html.unescape(f"&#{name};"))

    def render(self) -> str:
        self.feed(self.source)
        self.close()
        if self.rawdata:
            self._fail('Unsupported start tag ""')
        if self.open:
            raise bad_request(f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{self.open[-1]}"')
        return "".join(self.out)


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def _markdown_v2_text(source: str) -> str:
    """The visible text of MarkdownV2, refusing unescaped reserved characters like Telegram."""
    out, open_marks, i, n = [], [], 0, len(source)
    at_line_start = True
    while i < n:
        c = source[i]
        if c == "\\":
            if i + 1 >= n:
                raise bad_request("can't parse entities: Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.append(source[i + 1])
            i += 2
        elif c == "`":
            fence = "```" if source.startswith("```", i) else "`"
            end = source.find(fence, i + len(fence))
            if end < 0:
                raise bad_request(f"can't parse entities: Can't find end of {'Pre' if fence == '```' else 'Code'} entity")
            body = source[i + len(fence):end]
            if fence == "```" and "\n" in body:
                body = body.split("\n", 1)[1]      # first line names the language
            out.append(re.sub(r"\\(.)", r"\1", body))
            i = end + len(fence)
        elif c == ">" and at_line_start:
            i += 1
        elif c in "*_~|" or c in "[]":
            mark = source[i:i + 2] if source.startswith(("__", "||"), i) else c
            if mark == "|":
                raise bad_request("can't parse entities: Character '|' is reserved and must be escaped with the preceding '\\'")
            if mark == "]":
                if not open_marks or open_marks[-1] != "[":
                    raise bad_request("can't parse entities: Character ']' is reserved and must be escaped with the preceding '\\'")
                open_marks.pop()
                if source.startswith("(", i + 1):
                    end = source.find(")", i + 2)
                    if end < 0:
                        raise bad_request("can't parse entities: Can't find end of a URL")
                    i = end + 1
                else:
                    i += 1
                continue
            if mark != "[" and open_marks and open_marks[-1] == mark:
                open_marks.pop()
            elif mark != "[" and mark in open_marks:
                raise bad_request("can't parse entities: Can't find end of an entity (bad nesting)")
            else:
                open_marks.append(mark)
            i += len(mark)
        elif c in _MDV2_RESERVED:
            raise bad_request(f"can't parse entities: Character '{c}' is reserved and must be escaped with the preceding '\\'")
        else:
            out.append(c)
            i += 1
        at_line_start = c == "\n"
    if open_marks:
        raise bad_request(f"can't parse entities: Can't find end of the entity starting with {open_marks[-1]!r}")
    return "".join(out)


def visible_text(text: str, parse_mode: str | None) -> str:
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _HtmlText(text).render()
    if mode == "markdownv2":
        return _markdown_v2_text(text)
    if mode == "markdown":
        return re.sub(r"[*_`]", "", text)
    return text


def _utf16_len(text: str) -> int:
    # Entity offsets and lengths count UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _check_markup(markup: dict | None) -> None:
    rows = (markup or {}).get("inline_keyboard")
    if rows is None:
        return
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise bad_request("BUTTON_TEXT_EMPTY")  # text is required on every button
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")


# --- the server ---------------------------------------------------------------------------

class FakeTelegram:
    """The fake Bot API server plus the synchronous API a test uses to play the users."""

    def __init__(self, token: str = TOKEN, *, bot_username: str = "stylebot_test_bot", local: bool = False):
        self.token = token
        self.local = local                 # plays a Local Bot API server (--local)
        self.callback_ttl_s = 10.0         # an unanswered press expires after this
        self.webhook_url: str | None = None
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": "StyleBot",
                         "username": bot_username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False}
        self.port: int | None = None
        self.commands: dict = {}           # (scope JSON, language_code) -> commands set by setMyCommands
        self.chat_actions: list = []       # (monotonic time, chat_id, action)
        self.downloads: list = []          # file paths fetched over HTTP (/file/bot<token>/<path>)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._seq = 0
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1001)
        self._update_ids = itertools.count(500001)
        self._users: dict[int, User] = {}
        self._chats: dict[int, dict] = {}              # chat_id -> Chat JSON
        self._blocked: set[int] = set()
        self._messages: dict[int, list[ChatMessage]] = {}
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, FileRecord] = {}
        self._paths: dict[str, FileRecord] = {}
        self._updates: deque[dict] = deque()           # not yet confirmed by an offset
        self._delivered_up_to = 0                      # highest update_id handed to the bot
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._queries: dict[str, Press] = {}
        self._answers: dict[str, dict] = {}
        self._injected: dict[str, deque] = {}
        self._faults: dict[str, deque] = {}
        self._flood: dict | None = None                # the rate model, once flood_control() is on
        self._sent_at: dict[int, deque] = {}           # chat_id -> monotonic times of counted calls
        self._refusals: dict[int, int] = {}            # chat_id -> 429s in a row, for the growing wait
        self._groups: dict[int, Group] = {}
        self._local_dir: Path | None = None
        self._calls: list[Call] = []
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        """What the bot takes as TELEGRAM_API_URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeTelegram":
        started = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def serve():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_site())
            except BaseException as exc:  # handed to start() so the test sees why
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-telegram", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop_site(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        if self._local_dir is not None:
            shutil.rmtree(self._local_dir, ignore_errors=True)

    def __enter__(self) -> "FakeTelegram":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _start_site(self):
        self._update_event = asyncio.Event()
        # Room for a 50 MB upload so that the size check below answers in Bot API JSON.
        app = web.Application(client_max_size=UPLOAD_LIMIT + 5 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        self._runner = web.AppRunner(app, shutdown_timeout=1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_site(self):
        self._closing = True
        self._update_event.set()      # long polls return now instead of at their timeout
        await self._runner.cleanup()

    # -- HTTP --

    async def _read_params(self, request: web.Request) -> tuple[dict, dict]:
        params: dict = dict(request.query)
        files: dict = {}
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        elif request.can_read_body:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.file.read(), value.content_type)
                else:
                    params[name] = value
        return params, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        call = Call(method=name, params={}, files={}, time=time.monotonic())
        with self._lock:
            self._calls.append(call)
            self._in_flight += 1
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params, files = await self._read_params(request)
            call.params = params
            call.files = {k: (v[0], len(v[1])) for k, v in files.items()}
            fault = self._take_fault(name, call)
            if fault in ("html_502", "html_413"):
                return self._html_error_page(call, int(fault[-3:]))
            if fault == "drop":
                return self._drop(request, call)
            self._take_injected(name, call)
            self._check_flood(name, params)
            handler = self._handlers().get(name.lower())
            if handler is None and name.lower().startswith("set"):
                handler = self._api_true      # setMyDescription and friends: nothing to check
            if name.lower() == "getupdates":
                result = await self._api_get_updates(params)
            elif handler is None:
                raise ApiError(404, "Not Found: method not found")
            else:
                with self._lock:
                    result = handler(params, files)
            body = {"ok": True, "result": result}
            call.status, call.ok = 200, True
            if fault == "drop_after":     # done, but the answer never reaches the bot
                return self._drop(request, call)
        except ApiError as err:
            body = {"ok": False, "error_code": err.code, "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
            call.status, call.ok, call.description = err.code, False, err.description
        finally:
            with self._lock:
                call.end = time.monotonic()
                self._in_flight -= 1
                if name.lower() != "getupdates":
                    self._last_activity = call.end
                self._bump()
        return web.json_response(body, status=call.status)

    async def _handle_download(self, request: web.Request) -> web.Response:
        record = self._paths.get(request.match_info["path"])
        self.downloads.append(request.match_info["path"])
        if request.match_info["token"] != self.token or record is None or record.data is None:
            # Telegram answers a bad download link with a bare 404 JSON body.
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=record.data, content_type="application/octet-stream")

    def _take_fault(self, name: str, call: Call) -> str | None:
        with self._lock:
            queue = self._faults.get(name.lower())
            if not queue:
                return None
            call.injected = True
            return queue.popleft()

    def _html_error_page(self, call: Call, status: int) -> web.Response:
        """What nginx in front of the Bot API answers when the back end is away: not JSON at all."""
        reason = {502: "Bad Gateway", 413: "Request Entity Too Large"}[status]
        call.status, call.ok, call.description = status, False, f"HTML {status} page"
        page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
                "</body>\r\n</html>\r\n")
        return web.Response(text=page, status=status, content_type="text/html")

    @staticmethod
    def _drop(request: web.Request, call: Call) -> web.Response:
        """Close the connection without an answer: the client sees it cut off."""
        call.status, call.ok = 0, False
        call.description = call.description or "connection dropped"
        request.transport.abort()
        return web.Response(status=204)

    def _check_flood(self, name: str, params: dict) -> None:
        """Telegram's flood control, roughly: a burst per chat, a budget per minute per group."""
        if self._flood is None or name.lower() not in FLOOD_COUNTED:
            return
        try:
            chat_id = int(params.get("chat_id"))
        except (TypeError, ValueError):
            return
        with self._lock:
            if chat_id in self._groups:
                count, window = self._flood["group_per_minute"], 60.0
            else:
                count, window = self._flood["chat_burst"], self._flood["chat_window_s"]
            now = time.monotonic()
            sent = self._sent_at.setdefault(chat_id, deque())
            while sent and now - sent[0] >= window:
                sent.popleft()
            if len(sent) >= count:
                # Pushing on while refused makes the wait longer, as on Telegram.
                self._refusals[chat_id] = self._refusals.get(chat_id, 0) + 1
                wait = math.ceil(window - (now - sent[0])) + self._refusals[chat_id] - 1
                raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
            self._refusals.pop(chat_id, None)
            sent.append(now)

    def _take_injected(self, name: str, call: Call) -> None:
        with self._lock:
            queue = self._injected.get(name.lower())
            if not queue:
                return
            status, retry_after, description = queue.popleft()
        call.injected = True
        if status == 429:
            raise ApiError(429, description or f"Too Many Requests: retry after {retry_after}",
                           {"retry_after": retry_after})
        raise ApiError(status, description or {500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Server Error"))

    def _handlers(self) -> dict[str, Callable]:
        return {
            "getme": lambda p, f: self.bot_user,
            "deletewebhook": self._api_delete_webhook,
            "setwebhook": self._api_set_webhook,
            "getwebhookinfo": lambda p, f: {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)},
            "setmycommands": self._api_set_my_commands,
            "getmycommands": lambda p, f: self.commands.get((json.dumps(_json(p.get("scope"), "scope") or {"type": "default"}, sort_keys=True), p.get("language_code", "")), []),
            "sendmessage": self._api_send_message,
            "sendphoto": lambda p, f: self._api_send_file("photo", p, f),
            "senddocument": lambda p, f: self._api_send_file("document", p, f),
            "sendmediagroup": self._api_send_media_group,
            "sendchataction": self._api_send_chat_action,
            "editmessagetext": lambda p, f: self._api_edit(p, "text"),
            "editmessagecaption": lambda p, f: self._api_edit(p, "caption"),
            "editmessagereplymarkup": lambda p, f: self._api_edit(p, None),
            "deletemessage": self._api_delete_message,
            "answercallbackquery": self._api_answer_callback_query,
            "getfile": self._api_get_file,
            "copymessage": self._api_copy_message,
        }

    # -- Bot API methods (run under self._lock) --

    def _api_true(self, params, files):
        return True

    def _api_set_webhook(self, params, files):
        url = params.get("url") or ""
        if url and not self.local:
            # What Telegram answers; a Local Bot API server takes any URL and port.
            parts = urlsplit(url)
            if parts.scheme != "https":
                raise bad_request("bad webhook: HTTPS url must be provided for webhook")
            if (parts.port or 443) not in WEBHOOK_PORTS:
                raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        self.webhook_url = url or None
        return True

    def _api_delete_webhook(self, params, files):
        if _bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        return True

    def _api_set_my_commands(self, params, files):
        scope = _json(params.get("scope"), "scope") or {"type": "default"}
        key = (json.dumps(scope, sort_keys=True), params.get("language_code", ""))
        self.commands[key] = _json(params.get("commands"), "commands")
        return True

    async def _api_get_updates(self, params) -> list:
        offset = int(params.get("offset", 0) or 0)
        limit = min(max(int(params.get("limit", 100) or 100), 1), 100)
        deadline = time.monotonic() + min(float(params.get("timeout", 0) or 0), 50)
        with self._lock:
            if "allowed_updates" in params:
                allowed = _json(params["allowed_updates"], "allowed_updates")
                # An empty list means "all but the opt-in kinds", like no list at all.
                self._allowed_updates = allowed or None
            self._poll_generation += 1
            generation = self._poll_generation
        self._update_event.set()      # an older long poll still waiting ends with 409 below
        await asyncio.sleep(0)
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                        "make sure that only one bot instance is running")
                ready = self._pending_updates(offset, limit)
                if ready or self._closing or time.monotonic() >= deadline:
                    if ready:
                        self._delivered_up_to = max(self._delivered_up_to, ready[-1]["update_id"])
                    return ready
            # No await between the check above and clear(): a new update's set() runs
            # on this loop only once we wait, so it cannot be lost.
            self._update_event.clear()
            try:
                await asyncio.wait_for(self._update_event.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                pass

    def _pending_updates(self, offset: int, limit: int) -> list:
        if offset < 0:
            return list(self._updates)[offset:][:limit]
        # An offset confirms, and forgets, every update below it.
        while self._updates and self._updates[0]["update_id"] < offset:
            self._updates.popleft()
        return list(itertools.islice(self._updates, limit))

    def _chat_for_sending(self, params) -> int:
        chat_id = _int(params.get("chat_id"), "chat_id")
        if chat_id not in self._chats:
            raise bad_request("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _reply_to(self, chat_id: int, params) -> int | None:
        reply = _json(params.get("reply_parameters"), "reply_parameters") or {}
        target = reply.get("message_id", params.get("reply_to_message_id"))
        if target is None:
            return None
        target = _int(target, "reply_to_message_id")
        if self._find(chat_id, target) is None:
            if not _bool(reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply", False))):
                raise bad_request("message to be replied not found")
            return None
        return target

    def _thread_for_sending(self, chat_id: int, params) -> int | None:
        thread = params.get("message_thread_id")
        if thread in (None, ""):
            return None
        thread = _int(thread, "message_thread_id")
        group = self._groups.get(chat_id)
        if group is None or not group.forum or thread not in group.topics:
            raise bad_request("message thread not found")
        return thread

    def _new_bot_message(self, chat_id: int, method: str, params: dict | None = None, **fields) -> ChatMessage:
        if params is not None:
            fields.setdefault("thread_id", self._thread_for_sending(chat_id, params))
        message = ChatMessage(chat_id=chat_id, message_id=self._next_message_id(chat_id), sender=None,
                              method=method, **fields)
        message.history.append(message._state(method))
        self._messages.setdefault(chat_id, []).append(message)
        self._touch(message)
        return message

    def _api_send_message(self, params, files):
        chat_id = self._chat_for_sending(params)
        raw = params.get("text")
        if not raw:
            raise bad_request("message text is empty")
        parse_mode = params.get("parse_mode") or None
        text = visible_text(raw, parse_mode)
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        markup = _json(params.get("reply_markup"), "reply_markup")
        _check_markup(markup)
        reply_to = self._reply_to(chat_id, params)
        message = self._new_bot_message(chat_id, "sendMessage", params, text=text, raw_text=raw, parse_mode=parse_mode,
                                        reply_markup=markup, reply_to=reply_to)
        return self._message_json(message)

    def _caption(self, params) -> tuple[str | None, str | None, str | None]:
        raw = params.get("caption") or None
        parse_mode = params.get("parse_mode") or None
        if raw is None:
            return None, None, parse_mode
        caption = visible_text(raw, parse_mode)
        if len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        return caption, raw, parse_mode

    def _input_file(self, kind: str, params, files) -> tuple[bytes | None, str | None, FileRecord | None]:
        """The file a send* call names: an upload (attach:// or a part of that name) or a file_id."""
        value = params.get(kind)
        if value is None and kind in files:
            filename, data, _ = files[kind]
            return data, filename, None
        if not value:
            raise bad_request(f"there is no {kind} in the request")
        if value.startswith("attach://"):
            part = files.get(value[len("attach://"):])
            if part is None:
                raise bad_request(f"file attachment {value} not found")   # the part is missing
            return part[1], part[0], None
        record = self._files.get(value)
        if record is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if (record.kind == "photo") != (kind == "photo"):
            raise bad_request(f"can't use file of type {record.kind.capitalize()} as {kind.capitalize()}")
        return record.data, record.path.rsplit("/", 1)[-1], record

    def _api_send_file(self, kind: str, params, files):
        chat_id = self._chat_for_sending(params)
        data, filename, record = self._input_file(kind, params, files)
        caption, raw_caption, parse_mode = self._caption(params)
        markup = _json(params.get("reply_markup"), "reply_markup")
        _check_markup(markup)
        reply_to = self._reply_to(chat_id, params)
        fields: dict = {"kind": kind, "caption": caption, "raw_caption": raw_caption, "parse_mode": parse_mode,
                        "reply_markup": markup, "reply_to": reply_to, "file_bytes": data, "file_name": filename}
        fields.update(self._file_fields(kind, data, filename, record))
        message = self._new_bot_message(chat_id, f"send{kind.capitalize()}", params, **fields)
        return self._message_json(message)

    def _file_fields(self, kind: str, data: bytes | None, filename: str | None, record: FileRecord | None) -> dict:
        """The photo sizes or the document of a sent file: a new upload, or a file_id sent again."""
        if kind == "photo":
            return {"photo": record.photo_sizes if record is not None else self._uploaded_photo(data)}
        if record is not None:
            return {"document": {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                                 "file_name": filename, "file_size": record.size}}
        if not data:
            raise bad_request("file must be non-empty")
        if len(data) > UPLOAD_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        return {"document": self._document(data, filename or "document", None, None)}

    def _api_send_media_group(self, params, files):
        """An album: 2-10 items, documents only with documents (audio only with audio), a caption per
        item; one message each, sharing a media_group_id. Telegram takes no keyboard on an album."""
        chat_id = self._chat_for_sending(params)
        media = _json(params.get("media"), "media")
        if not isinstance(media, list) or not media:
            raise bad_request("media is empty" if not media else "can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise bad_request("Too few media in the album" if len(media) < 2 else "Too much media in the album")
        kinds = [item.get("type") if isinstance(item, dict) else None for item in media]
        if any(kind not in ("photo", "video", "document", "audio") for kind in kinds):
            raise bad_request("wrong type of the media in the album")
        for lone in ("document", "audio"):
            if lone in kinds and any(kind != lone for kind in kinds):
                raise bad_request(f"{lone.capitalize()}s can't be mixed with other media types in an album")
        reply_to = self._reply_to(chat_id, params)
        thread = self._thread_for_sending(chat_id, params)
        group_id = str(next(self._ids) * 104729)
        staged = []
        for item in media:   # every item checked before any message is made: an album is all or nothing
            kind = item["type"]
            data, filename, record = self._input_file(kind, {kind: item.get("media")}, files)
            caption, raw_caption, parse_mode = self._caption(item)
            fields: dict = {"kind": kind, "caption": caption, "raw_caption": raw_caption, "parse_mode": parse_mode,
                            "file_bytes": data, "file_name": filename, "media_group_id": group_id,
                            "reply_to": reply_to, "thread_id": thread}
            fields.update(self._file_fields("photo" if kind == "photo" else "document", data, filename, record))
            fields["kind"] = "photo" if kind == "photo" else "document"
            staged.append(fields)
        messages = [self._new_bot_message(chat_id, "sendMediaGroup", **fields) for fields in staged]
        return [self._message_json(message) for message in messages]

    def _uploaded_photo(self, data: bytes) -> list:
        if not data:
            raise bad_request("file must be non-empty")
        if len(data) > PHOTO_UPLOAD_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except Exception:
            raise bad_request("IMAGE_PROCESS_FAILED") from None
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        return self._photo_sizes(data)

    def _api_send_chat_action(self, params, files):
        chat_id = self._chat_for_sending(params)
        self._thread_for_sending(chat_id, params)
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((time.monotonic(), chat_id, action))
        return True

    def _message_to_change(self, params, verb: str) -> ChatMessage:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake server")
        chat_id = _int(params.get("chat_id"), "chat_id")
        message = self._find(chat_id, _int(params.get("message_id"), "message_id"))
        if message is None or message.deleted:
            raise bad_request(f"message to {verb} not found")
        return message

    def _api_edit(self, params, what: str | None):
        message = self._message_to_change(params, "edit")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        markup = _json(params.get("reply_markup"), "reply_markup")
        _check_markup(markup)
        # Telegram drops an inline keyboard left out of an edit.
        new = {"reply_markup": markup, "text": message.text, "raw_text": message.raw_text,
               "caption": message.caption, "raw_caption": message.raw_caption, "parse_mode": message.parse_mode}
        if what == "text":
            if message.kind != "text":
                raise bad_request("there is no text in the message to edit")
            raw = params.get("text")
            if not raw:
                raise bad_request("message text is empty")
            new["parse_mode"] = params.get("parse_mode") or None
            new["raw_text"], new["text"] = raw, visible_text(raw, new["parse_mode"])
            if len(new["text"]) > TEXT_LIMIT:
                raise bad_request("MESSAGE_TOO_LONG")
        elif what == "caption":
            if message.kind == "text":
                raise bad_request("there is no caption in the message to edit")
            new["caption"], new["raw_caption"], new["parse_mode"] = self._caption(params)
        # Raw text counts too: a change of formatting alone is a change for Telegram.
        if all(getattr(message, k) == v for k, v in new.items() if k != "parse_mode"):
            raise bad_request("message is not modified: specified new message content and reply markup are "
                              "exactly the same as a current content and reply markup of the message")
        for key, value in new.items():
            setattr(message, key, value)
        message.edit_date = int(time.time())
        message.history.append(message._state({"text": "editMessageText", "caption": "editMessageCaption"}
                                              .get(what, "editMessageReplyMarkup")))
        self._touch(message)
        return self._message_json(message)

    def _api_delete_message(self, params, files):
        message = self._message_to_change(params, "delete")
        message.deleted = True
        self._touch(message)
        return True

    def _api_answer_callback_query(self, params, files):
        query_id = params.get("callback_query_id")
        press = self._queries.get(query_id)
        too_late = press is not None and time.monotonic() - press.time > self.callback_ttl_s
        if press is None or query_id in self._answers or too_late:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self._answers[query_id] = {k: v for k, v in params.items() if k != "callback_query_id"}
        self._bump()
        return True

    def _api_get_file(self, params, files):
        record = self._files.get(params.get("file_id") or "")
        if record is None:
            raise bad_request("invalid file_id")
        if record.size > (LOCAL_DOWNLOAD_LIMIT if self.local else DOWNLOAD_LIMIT):
            raise bad_request("file is too big")
        path = record.path
        if self.local:
            # A Local Bot API server keeps the file on its disk and says where.
            if self._local_dir is None:
                self._local_dir = Path(tempfile.mkdtemp(prefix="fake-bot-api-"))
            local = self._local_dir / record.path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(record.data or b"")
            path = str(local)
        return {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                "file_size": record.size, "file_path": path}

    def _api_copy_message(self, params, files):
        chat_id = self._chat_for_sending(params)
        source = self._find(_int(params.get("from_chat_id"), "from_chat_id"), _int(params.get("message_id"), "message_id"))
        if source is None or source.deleted:
            raise bad_request("message to copy not found")
        markup = _json(params.get("reply_markup"), "reply_markup")
        _check_markup(markup)
        fields = {k: getattr(source, k) for k in ("kind", "text", "raw_text", "caption", "raw_caption", "parse_mode",
                                                  "entities", "photo", "document", "sticker", "file_bytes", "file_name")}
        if "caption" in params:
            fields["caption"], fields["raw_caption"], fields["parse_mode"] = self._caption(params)
        copy = self._new_bot_message(chat_id, "copyMessage", params, reply_markup=markup,
                                     reply_to=self._reply_to(chat_id, params), **fields)
        return {"message_id": copy.message_id}

    # -- building Bot API objects --

    def _message_json(self, message: ChatMessage, *, with_reply: bool = True) -> dict:
        out = {"message_id": message.message_id, "date": message.date, "chat": self._chats[message.chat_id],
               "from": self.bot_user if message.from_bot else message.sender.to_json()}
        for key in ("text", "entities", "caption", "photo", "document", "sticker", "edit_date", "media_group_id"):
            if getattr(message, key) is not None:
                out[key] = getattr(message, key)
        if message.thread_id is not None:
            out["message_thread_id"] = message.thread_id
            out["is_topic_message"] = True
        out.update(message.service or {})
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            out["reply_markup"] = message.reply_markup    # only inline keyboards are shown on a Message
        if with_reply and message.reply_to is not None:
            replied = self._find(message.chat_id, message.reply_to)
            if replied is not None:
                out["reply_to_message"] = self._message_json(replied, with_reply=False)
        return out

    def _new_file(self, kind: str, data: bytes | None, size: int, ext: str, photo_sizes=None) -> FileRecord:
        n = next(self._ids)
        folder = {"photo": "photos", "document": "documents", "sticker": "stickers"}[kind]
        record = FileRecord(file_id=f"{kind[:2].upper()}AC{n}{secrets.token_urlsafe(12)}",
                            file_unique_id=f"AQAD{n}", kind=kind, data=data, size=size,
                            path=f"{folder}/file_{n}{ext}", photo_sizes=photo_sizes)
        self._files[record.file_id] = record
        self._paths[record.path] = record
        return record

    def _photo_sizes(self, data: bytes, file_size: int | None = None) -> list:
        """Telegram's PhotoSize array: thumbnails up to the full picture, smallest first."""
        sizes: list = []
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        longest = max(width, height)
        sides = [s for s in THUMB_SIDES if s < longest] + [min(longest, PHOTO_MAX_SIDE)]
        for side in sides:
            scale = side / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            payload = data          # the full size is the very bytes the sender gave
            if side != longest:
                try:
                    buffer = io.BytesIO()
                    image.convert("RGB").resize((w, h), Image.LANCZOS).save(buffer, "JPEG", quality=85)
                    payload = buffer.getvalue()
                except OSError:     # a truncated picture: keep its bytes, sizes stay declared
                    pass
            declared = file_size if (file_size is not None and side == sides[-1]) else len(payload)
            record = self._new_file("photo", payload, declared, ".jpg", photo_sizes=sizes)
            sizes.append({"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                          "width": w, "height": h, "file_size": declared})
        return sizes

    def _document(self, data: bytes | None, file_name: str, mime_type: str | None, file_size: int | None) -> dict:
        size = file_size if file_size is not None else len(data or b"")
        ext = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        record = self._new_file("document", data, size, ext)
        return {"file_id": record.file_id, "file_unique_id": record.file_unique_id, "file_name": file_name,
                "mime_type": mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream",
                "file_size": size}

    # -- bookkeeping --

    def _bump(self) -> int:
        self._seq += 1
        self._changed.notify_all()
        return self._seq

    def _touch(self, message: ChatMessage) -> None:
        message.seq = self._bump()

    def _next_message_id(self, chat_id: int) -> int:
        # One sequence per chat, shared by the user's and the bot's messages.
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _find(self, chat_id: int, message_id: int) -> ChatMessage | None:
        for message in self._messages.get(chat_id, []):
            if message.message_id == message_id:
                return message
        return None

    def _wait_answer(self, query_id: str, timeout: float) -> dict:
        with self._lock:
            if not self._changed.wait_for(lambda: query_id in self._answers, timeout):
                raise AssertionError(f"the bot did not answer callback query {query_id} within {timeout}s")
            return self._answers[query_id]

    # --- the test's side: users ------------------------------------------------------------

    def add_user(self, id: int | None = None, first_name: str = "Alice", username: str | None = None,
                 language_code: str | None = "en", last_name: str | None = None, *, is_bot: bool = False) -> User:
        """A user who has opened a private chat with the bot (so the bot may write to them).

        is_bot: another bot, met in groups."""
        with self._lock:
            user = User(id if id is not None else next(self._user_ids), first_name, username, language_code, last_name,
                        is_bot)
            self._users[user.id] = user
            self._chats[user.id] = user.chat_json()
            return user

    def add_chat(self, chat_id: int, type: str = "channel", title: str = "Log") -> None:
        """A group or channel the bot may write to (e.g. an admin log)."""
        with self._lock:
            self._chats[chat_id] = {"id": chat_id, "type": type, "title": title}

    def add_group(self, title: str = "Friends", *, forum: bool = False, privacy: bool = True,
                  topics: tuple = ()) -> Group:
        """A supergroup with the bot in it; forum=True with topic ids makes a group with topics.

        privacy: @BotFather's privacy mode (on by default): the bot is then given only
        commands meant for it, replies to its own messages and service messages."""
        with self._lock:
            group = Group(-1001000000000 - len(self._groups) - 1, title, forum, privacy, set(topics))
            self._groups[group.id] = group
            self._chats[group.id] = group.chat_json()
            return group

    def set_flood_control(self, on: bool = True, *, chat_burst: int = 3, chat_window_s: float = 3.0,
                          group_per_minute: int = 20) -> None:
        """Answer floods with 429 like Telegram: per chat a burst in a window, per group a minute's budget."""
        with self._lock:
            self._flood = {"chat_burst": chat_burst, "chat_window_s": chat_window_s,
                           "group_per_minute": group_per_minute} if on else None
            self._sent_at.clear()
            self._refusals.clear()

    def fault(self, method: str, kind: str = "drop", times: int = 1) -> None:
        """The next `times` calls of `method` meet a network fault: html_502, html_413, drop, drop_after."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.setdefault(method.lower(), deque()).extend([kind] * times)

    def block(self, user: User) -> None:
        """The user blocks the bot: sends to them answer 403."""
        with self._lock:
            self._blocked.add(user.id)

    def push_update(self, update: dict) -> dict:
        """Queue a raw update (update_id is filled in) for the bot's next getUpdates."""
        with self._lock:
            update = {"update_id": next(self._update_ids), **update}
            kind = next(k for k in update if k != "update_id")
            allowed = self._allowed_updates
            # Telegram never creates updates of kinds the bot did not ask for.
            if (kind in allowed) if allowed else (kind not in OPT_IN_UPDATES):
                self._updates.append(update)
            self._bump()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._update_event.set)
        return update

    def _user_message(self, user: User, *, chat: Group | None = None, thread: int | None = None,
                      **fields) -> ChatMessage:
        with self._lock:
            chat_id = chat.id if chat is not None else user.id
            if chat is None and user.id not in self._chats:
                self._chats[user.id] = user.chat_json()
            if thread is not None and (chat is None or not chat.forum or thread not in chat.topics):
                raise AssertionError(f"no topic {thread} in {chat!r}")
            message = ChatMessage(chat_id=chat_id, message_id=self._next_message_id(chat_id), sender=user,
                                  method="user", thread_id=thread, **fields)
            message.history.append(message._state("user"))
            self._messages.setdefault(chat_id, []).append(message)
            self._touch(message)
            if chat is None or self._bot_may_see(chat, message):
                self.push_update({"message": self._message_json(message)})
            return message

    def _bot_may_see(self, group: Group, message: ChatMessage) -> bool:
        """Privacy mode: commands meant for the bot, replies to its messages, service messages."""
        if not group.privacy or message.service:
            return True
        if message.reply_to is not None:
            replied = self._find(group.id, message.reply_to)
            if replied is not None and replied.from_bot:
                return True
        text = message.text or ""
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            mention = command.split("@", 1)[1] if "@" in command else None
            return mention is None or mention.lower() == self.bot_user["username"].lower()
        return False

    def send_text(self, user: User, text: str, *, reply_to: ChatMessage | None = None, chat: Group | None = None,
                  thread: int | None = None) -> ChatMessage:
        """The user writes `text` (in a private chat, or in `chat`, a group, and its topic `thread`).

        A leading /command gets its bot_command entity; "/style@some_bot" names the bot it is meant for."""
        entities = None
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        return self._user_message(user, chat=chat, thread=thread, text=text, raw_text=text, entities=entities,
                                  reply_to=reply_to.message_id if reply_to else None)

    def send_photo(self, user: User, data: bytes, caption: str | None = None, *,
                   file_size: int | None = None, reply_to: ChatMessage | None = None, chat: Group | None = None,
                   thread: int | None = None, media_group_id: str | None = None) -> ChatMessage:
        """The user sends a picture as a photo; file_size overrides the largest size's declared size.

        media_group_id: a part of an album (Telegram sends each photo of an album as its own message)."""
        with self._lock:
            sizes = self._photo_sizes(data, file_size)
        return self._user_message(user, chat=chat, thread=thread, kind="photo", photo=sizes, caption=caption,
                                  raw_caption=caption, file_bytes=data, media_group_id=media_group_id,
                                  reply_to=reply_to.message_id if reply_to else None)

    def send_album(self, user: User, pictures: list[bytes], **where) -> list[ChatMessage]:
        """Several photos sent together: one message each, sharing a media_group_id."""
        group_id = str(next(self._ids) * 7919)
        return [self.send_photo(user, data, media_group_id=group_id, **where) for data in pictures]

    def send_service(self, user: User, chat: Group, **fields) -> ChatMessage:
        """A service message in a group, e.g. new_chat_members=[...], pinned_message={...}, new_chat_title="x"."""
        fields = {k: ([u.to_json() if isinstance(u, User) else u for u in v] if isinstance(v, list) else v)
                  for k, v in fields.items()}
        return self._user_message(user, chat=chat, kind="service", service=fields)

    def send_document(self, user: User, data: bytes | None, file_name: str, mime_type: str | None = None,
                      caption: str | None = None, *, file_size: int | None = None) -> ChatMessage:
        """The user sends a file. data=None with file_size=25_000_000 declares a file too big to download."""
        if data is None and file_size is None:
            raise ValueError("give data, or file_size for a declared-only file")
        with self._lock:
            document = self._document(data, file_name, mime_type, file_size)
        return self._user_message(user, kind="document", document=document, caption=caption, raw_caption=caption,
                                  file_bytes=data, file_name=file_name)

    def send_sticker(self, user: User, data: bytes, *, is_animated: bool = False, is_video: bool = False,
                     emoji: str = "🙂") -> ChatMessage:
        """The user sends a sticker: webp when static, tgs when animated, webm when video."""
        width = height = 512
        if not (is_animated or is_video):
            try:
                width, height = Image.open(io.BytesIO(data)).size
            except Exception:
                pass
        ext = ".tgs" if is_animated else ".webm" if is_video else ".webp"
        with self._lock:
            record = self._new_file("sticker", data, len(data), ext)
        sticker = {"file_id": record.file_id, "file_unique_id": record.file_unique_id, "type": "regular",
                   "width": width, "height": height, "is_animated": is_animated, "is_video": is_video,
                   "emoji": emoji, "file_size": len(data)}
        return self._user_message(user, kind="sticker", sticker=sticker, file_bytes=data)

    def press(self, user: User, message: ChatMessage, callback_data: str | None = None, *,
              text: str | None = None, inaccessible: bool = False) -> Press:
        """The user presses an inline button of the bot's message, chosen by its data or by its text.

        inaccessible: Telegram no longer shows the message to the bot (it is old), so the
        query carries an InaccessibleMessage: chat, message_id and date 0, nothing else."""
        with self._lock:
            in_group = message.chat_id in self._groups
            if not message.from_bot or (message.chat_id != user.id and not in_group) or message.deleted:
                raise AssertionError(f"{user.first_name} cannot press a button on {message!r}")
            if text is not None:
                callback_data = message.button(text).get("callback_data")
            if callback_data not in [b.get("callback_data") for b in message.buttons]:
                raise AssertionError(f"no button with callback_data {callback_data!r} on {message!r}: {message.buttons}")
            query_id = str(next(self._ids) * 1000003)
            press = Press(query_id, user, message, callback_data, self._seq, self)
            self._queries[query_id] = press
            shown = ({"chat": self._chats[message.chat_id], "message_id": message.message_id, "date": 0}
                     if inaccessible else self._message_json(message))
            self.push_update({"callback_query": {"id": query_id, "from": user.to_json(),
                                                 "message": shown,
                                                 "chat_instance": f"-{user.id}77", "data": callback_data}})
            return press

    # --- the test's side: looking at what the bot did -----------------------------------------

    def mark(self) -> int:
        """A point in time for wait_for(after=...): later sends and edits count, earlier ones do not."""
        with self._lock:
            return self._seq

    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        """The bot's messages in a chat, oldest first (live records)."""
        with self._lock:
            return [m for m in self._messages.get(chat_id, []) if m.from_bot and (include_deleted or not m.deleted)]

    def chat_log(self, chat_id: int) -> list[ChatMessage]:
        """Every message in the chat, the user's too, deleted ones included."""
        with self._lock:
            return list(self._messages.get(chat_id, []))

    def wait_for(self, predicate: Callable[[ChatMessage], bool] | None = None, *, chat_id: int | None = None,
                 text: str | re.Pattern | None = None, kind: str | None = None, after: int | Any = None,
                 timeout: float = 10.0) -> ChatMessage:
        """The first bot message (not deleted) that matches, waiting for it to be sent or edited.

        text: a substring of, or a pattern searched in, the visible text or caption.
        after: a mark() or a send_*/press result; only messages sent or changed since count.
        """
        since = getattr(after, "seq", after) or 0

        def matches(m: ChatMessage) -> bool:
            if not m.from_bot or m.deleted or m.seq <= since:
                return False
            if chat_id is not None and m.chat_id != chat_id:
                return False
            if kind is not None and m.kind != kind:
                return False
            if text is not None:
                shown = m.text if m.text is not None else (m.caption or "")
                if not (text.search(shown) if isinstance(text, re.Pattern) else text in shown):
                    return False
            return predicate is None or predicate(m)

        def first():
            for chat in ([chat_id] if chat_id is not None else list(self._messages)):
                for m in self._messages.get(chat, []):
                    if matches(m):
                        return m
            return None

        with self._lock:
            found = self._changed.wait_for(first, timeout)   # returns first()'s last answer
            if found is not None:
                return found
            chats = [chat_id] if chat_id is not None else list(self._messages)
            seen = "\n".join(f"  {m!r}" for c in chats for m in self._messages.get(c, []))
            failures = "\n".join(f"  {c.method}: {c.description}" for c in self.errors())
            raise AssertionError(f"no bot message matched within {timeout}s (text={text!r}, kind={kind!r}).\n"
                                 f"Chat so far:\n{seen or '  (nothing)'}\nRefused calls:\n{failures or '  (none)'}")

    def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the bot has fetched every update and made no call (getUpdates aside) for `quiet` s.

        Only API traffic is watched: a bot busy computing without calls looks idle.
        """
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                now = time.monotonic()
                undelivered = any(u["update_id"] > self._delivered_up_to for u in self._updates)
                if not undelivered and self._busy_calls() == 0 and now - self._last_activity >= quiet:
                    return
                if now >= end:
                    raise AssertionError(f"the bot was not idle for {quiet}s within {timeout}s")
                self._changed.wait(min(quiet, end - now, 0.05))

    def _busy_calls(self) -> int:
        return sum(1 for c in self._calls if c.end is None and c.method.lower() != "getupdates")

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request so far (or those of one method, any case), in arrival order."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method.lower() == method.lower()]

    def wait_call(self, method: str, *, count: int = 1, timeout: float = 10.0) -> Call:
        """Wait until `method` has been called `count` times; the count-th call."""
        with self._lock:
            if not self._changed.wait_for(lambda: len(self.calls(method)) >= count, timeout):
                raise AssertionError(f"{method} was called {len(self.calls(method))} times, not {count}, in {timeout}s")
            return self.calls(method)[count - 1]

    def errors(self) -> list[Call]:
        """Calls the server refused on their own merits (injected failures left out)."""
        with self._lock:
            return [c for c in self._calls if c.ok is False and not c.injected]

    def fail(self, method: str, times: int = 1, *, status: int = 429, retry_after: int = 1,
             description: str | None = None) -> None:
        """The next `times` calls of `method` answer `status`: 429 with retry_after, or a 5xx."""
        with self._lock:
            queue = self._injected.setdefault(method.lower(), deque())
            queue.extend([(status, retry_after, description)] * times)

    def file_bytes(self, file_id: str) -> bytes | None:
        with self._lock:
            record = self._files.get(file_id)
            return record.data if record else None
