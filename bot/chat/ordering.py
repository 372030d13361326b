"""One user's updates handled in order, one after another; different users side by side."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User


class OneUpdateAtATime(BaseMiddleware):
    """Handle one user's updates in order, one after another.

    Polling runs updates as concurrent tasks; without this, an album of two
    photos sent to /style would race for the same dialog step. Different users
    still run side by side.
    """

    def __init__(self):
        self._locks: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, int] = {}   # updates holding or waiting for each lock

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        lock = self._locks.setdefault(user.id, asyncio.Lock())
        self._holders[user.id] = self._holders.get(user.id, 0) + 1
        try:
            async with lock:
                # The FSM middleware read the state before we waited; the update before may have moved it.
                if (state := data.get("state")) is not None:
                    data["raw_state"] = await state.get_state()
                return await handler(event, data)
        finally:
            self._holders[user.id] -= 1
            if not self._holders[user.id]:   # the last one out tidies up
                del self._holders[user.id], self._locks[user.id]
