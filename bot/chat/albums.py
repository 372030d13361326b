"""Albums: Telegram sends each picture of an album as its own message, sharing a media_group_id.

The bot answers an album once: a picture sent with no dialog going on gets
its menu for the album's first picture, and the others are kept quietly for
its "upscale the whole album" button (one menu that acts on the first, rather
than a menu per picture where every menu would act on the last one kept). Inside a dialog the
pictures simply arrive in order, so an album of two sent to /style is the
style and then the photo, as the dialog asks.

The middleware numbers each message's place in its album as `album_part`
(0: the first, or not in an album) for the handlers that care. An album sent
to be upscaled is one batch (bot/chat/batch.py): `AlbumGatherer` collects its
parts first.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.chat.i18n import profile_of
from bot.chat.pictures import PictureRef, PictureRejected, picture_ref_in

ALBUMS_KEPT = 1000
ALBUM_TTL_S = 600.0
ALBUMS_PER_USER = 3     # albums sent with no dialog, kept (as refs) for their "upscale the whole album" button
PROFILE_ALBUMS = "albums"


class AlbumParts(BaseMiddleware):
    def __init__(self):
        self._albums: OrderedDict[tuple[int, str], tuple[float, int]] = OrderedDict()   # -> (seen at, parts)

    def part_of(self, message: Message) -> int:
        if not message.media_group_id:
            return 0
        key = (message.chat.id, message.media_group_id)
        now = time.monotonic()
        seen_at, parts = self._albums.pop(key, (now, 0))
        if now - seen_at > ALBUM_TTL_S:
            parts = 0
        self._albums[key] = (seen_at, parts + 1)
        while len(self._albums) > ALBUMS_KEPT:
            self._albums.popitem(last=False)
        return parts

    async def __call__(self, handler: Callable[[Message, dict[str, Any]], Awaitable[Any]], event: Message,
                       data: dict[str, Any]) -> Any:
        data["album_part"] = self.part_of(event)
        return await handler(event, data)


ALBUM_QUIET_S = 1.0   # Telegram sends an album's parts within a moment; this long without one, it is complete

log = logging.getLogger(__name__)


class AlbumGatherer:
    """The parts of one album, gathered until none has come for `quiet_s`, then handed on together.

    Each part's handler returns at once (one user's updates run one after another,
    bot/chat/ordering.py), so the album is handed on from a task of its own."""

    def __init__(self, quiet_s: float = ALBUM_QUIET_S):
        self.quiet_s = quiet_s
        self._albums: dict[tuple[int, str], tuple[list, asyncio.Task]] = {}
        self._running: set[asyncio.Task] = set()

    def add(self, chat_id: int, media_group_id: str, part: Any,
            complete: Callable[[list], Awaitable[None]]) -> int:
        """Keep one part; `complete(parts)` runs once the album is whole. Returns the parts so far."""
        key = (chat_id, media_group_id)
        parts, waiting = self._albums.get(key, ([], None))
        if waiting is not None:
            waiting.cancel()
        parts.append(part)
        task = asyncio.create_task(self._complete_later(key, complete))
        self._albums[key] = (parts, task)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return len(parts)

    async def _complete_later(self, key: tuple[int, str], complete: Callable[[list], Awaitable[None]]) -> None:
        await asyncio.sleep(self.quiet_s)
        parts, _ = self._albums.pop(key)
        try:
            await complete(parts)
        except Exception:   # the update that brought it is long answered: log it, keep the bot up
            log.exception("handling an album of %d parts failed", len(parts))


def album_part_data(message: Message, download_limit: int) -> dict:
    """One part of an album as plain data (FSM data may hold it): its picture's ref, or why
    it is not a picture we take. Nothing is downloaded yet: a batch does that, part by part."""
    try:
        ref = picture_ref_in(message, download_limit)
    except PictureRejected as e:
        return {"rejected": e.text}
    return ref.as_data() if ref is not None else {"rejected": _("This isn't a picture.")}


def album_items(parts: list[dict]) -> list[PictureRef | str]:
    """The parts as a batch takes them: a ref, or the text that says why it cannot be used."""
    return [part["rejected"] if "rejected" in part else PictureRef.from_data(part) for part in parts]


async def keep_album_part(state: FSMContext, media_group_id: str, part: dict, *, first: bool) -> None:
    """Keep one part of an album sent with no dialog, for its menu's "upscale the whole album".

    In the profile, by album: the dialog's data is cleared by the next command, while the
    menu's button stays in the chat. Only the latest few albums are kept."""
    profile = profile_of(state)
    albums = dict(await profile.get_value(PROFILE_ALBUMS) or {})
    if not first and media_group_id not in albums:
        return   # its first part was no picture: the album has no menu
    albums[media_group_id] = [*albums.pop(media_group_id, []), part]
    while len(albums) > ALBUMS_PER_USER:
        albums.pop(next(iter(albums)))
    await profile.update_data({PROFILE_ALBUMS: albums})


async def kept_album(state: FSMContext, media_group_id: str) -> list[dict] | None:
    return (await profile_of(state).get_value(PROFILE_ALBUMS) or {}).get(media_group_id)
