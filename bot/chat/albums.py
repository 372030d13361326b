"""Albums: Telegram sends each picture of an album as its own message, sharing a media_group_id.

The bot answers an album once: a picture sent with no dialog going on gets
its menu for the album's first picture, and the others are passed over
quietly (one menu that acts on the first, rather than a menu per picture
where every menu would act on the last one kept). Inside a dialog the
pictures simply arrive in order, so an album of two sent to /style is the
style and then the photo, as the dialog asks.

The middleware numbers each message's place in its album as `album_part`
(0: the first, or not in an album) for the handlers that care.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message

ALBUMS_KEPT = 1000
ALBUM_TTL_S = 600.0


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
