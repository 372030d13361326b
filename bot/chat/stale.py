"""Messages that waited too long for the bot (it was down or restarting) are not acted on.

Telegram keeps undelivered updates for a day, and the bot does not drop them
on start: a message sent during a ten-second restart deserves its answer. But
a picture sent an hour ago should not start a job now, when its sender has
long moved on; each such sender instead hears once, in their language, that
the bot was away and what to do. Button presses carry no date of their own
(only the date of the message the button is on), so they are always acted
on; answering them may fail as too old, which never stops them
(bot/chat/retry.py, QuietCallbackAnswers).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

log = logging.getLogger(__name__)

STALE_AFTER_S = 300


class SkipStaleMessages(BaseMiddleware):
    def __init__(self, stale_after_s: float = STALE_AFTER_S):
        self.stale_after_s = stale_after_s
        self._told: set[tuple[int, int]] = set()   # (chat, user) told since this start

    async def __call__(self, handler: Callable[[Message, dict[str, Any]], Awaitable[Any]], event: Message,
                       data: dict[str, Any]) -> Any:
        age = time.time() - event.date.timestamp()
        if age <= self.stale_after_s:
            return await handler(event, data)
        log.info("skipping a message %d s old in chat %s", age, event.chat.id)
        key = (event.chat.id, event.from_user.id if event.from_user else 0)
        # In groups nobody is told: a note there would answer what others may not even remember.
        if event.chat.type == ChatType.PRIVATE and key not in self._told:
            self._told.add(key)
            await event.answer(_("👋 I was offline for a while and have only just come back, so I skipped "
                                 "what you sent meanwhile. Please send it again if you still need it."))
        return None
