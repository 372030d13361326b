"""Retrying Bot API requests through flood control and server hiccups.

aiogram raises TelegramRetryAfter on 429 and TelegramServerError on 5xx and
leaves the retrying to us; a result that took minutes to compute must not be
lost to one busy second on Telegram's side.
"""
from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)


class RetryRequests(BaseRequestMiddleware):
    def __init__(self, attempts: int = 5, longest_wait_s: float = 60.0, first_backoff_s: float = 0.5):
        self.attempts = attempts
        self.longest_wait_s = longest_wait_s
        self.first_backoff_s = first_backoff_s

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # Polling has its own back-off, and a retried getUpdates would delay shutdown.
        if isinstance(method, GetUpdates):
            return await make_request(bot, method)
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                if attempt == self.attempts or e.retry_after > self.longest_wait_s:
                    raise
                wait = e.retry_after
            except TelegramServerError:
                if attempt == self.attempts:
                    raise
                wait = min(self.first_backoff_s * 2 ** (attempt - 1), self.longest_wait_s)
            log.warning("%s: Telegram asked to wait; retry %d in %.1f s", type(method).__name__, attempt, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")
