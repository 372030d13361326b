"""Retrying Bot API requests through flood control, server hiccups and network faults.

aiogram raises TelegramRetryAfter on 429, TelegramServerError on 5xx,
ClientDecodeError when Telegram's front end answers with an HTML page (a 502
while the Bot API server is away) and TelegramNetworkError when the connection
fails; the retrying is left to us. What is retried, and how long we wait:

- Results (sendPhoto, sendDocument) took minutes to compute: they wait out
  429s up to a minute, and are retried with backoff on 5xx, HTML error pages
  and connections that could not be opened.
- Everything else waits only a few seconds at most: those calls run inside a
  handler, under the per-user lock, or are progress edits and chat actions,
  which the messenger rather drops and paces (bot/chat/flood.py) than waits for.
- A connection cut after the request went out (ServerDisconnectedError, a
  reset, a timeout) is never retried here: Telegram may have carried it out,
  and a second sendPhoto would be a second copy. The messenger decides what
  the user gets then (bot/chat/results.py).
"""
from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (ClientDecodeError, TelegramBadRequest, TelegramEntityTooLarge, TelegramNetworkError,
                                TelegramRetryAfter, TelegramServerError)
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response, SendDocument, SendPhoto, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import ClientConnectorError

log = logging.getLogger(__name__)

RESULT_METHODS = (SendPhoto, SendDocument)
SHORT_WAIT_S = 3.0   # the longest a call outside result delivery sleeps for a 429


def never_reached_telegram(error: Exception) -> bool:
    """True when the request surely was not carried out, so sending it again makes no copy."""
    if isinstance(error, ClientDecodeError):
        # An HTML page from the front end: the Bot API server never answered. A 413 page
        # refuses the size, and would refuse it again.
        return "413" not in str(error.data)[:200]
    if isinstance(error, TelegramEntityTooLarge):
        return False
    if isinstance(error, TelegramNetworkError):
        return isinstance(error.__cause__, ClientConnectorError)   # the connection was never opened
    return False


def is_entity_too_large(error: Exception) -> bool:
    return isinstance(error, TelegramEntityTooLarge) or (
        isinstance(error, ClientDecodeError) and "413" in str(error.data)[:200])


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
        is_result = isinstance(method, RESULT_METHODS)
        longest = self.longest_wait_s if is_result else SHORT_WAIT_S
        attempts = self.attempts if is_result else 3
        for attempt in range(1, attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                if attempt == attempts or e.retry_after > longest:
                    raise
                wait = e.retry_after
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as e:
                if attempt == attempts or not (isinstance(e, TelegramServerError) or never_reached_telegram(e)):
                    raise
                wait = min(self.first_backoff_s * 2 ** (attempt - 1), longest)
            log.warning("%s: Telegram asked to wait or was unreachable; retry %d in %.1f s",
                        type(method).__name__, attempt, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")


class QuietCallbackAnswers(BaseRequestMiddleware):
    """An answerCallbackQuery that fails never stops the press from acting.

    Presses queued while the bot was down, or held behind the user's other
    updates, are "too old" to answer: the spinner on the button has already
    gone, and the press should still do what it says. So a refused or lost
    answer is logged and reported to the handler as not given (False) instead
    of raising in the first line of every button handler.
    """

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if not isinstance(method, AnswerCallbackQuery):
            return await make_request(bot, method)
        try:
            return await make_request(bot, method)
        except (TelegramBadRequest, TelegramRetryAfter, TelegramNetworkError, ClientDecodeError) as e:
            log.info("callback query %s not answered: %s", method.callback_query_id, e)
            return False   # what the method returns: the session hands results, not Responses, on
