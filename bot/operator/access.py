"""Who may use the bot (ALLOWED_USERS) and how much (JOBS_PER_HOUR).

The allow list is an outer middleware on updates, before the storage is
read: an update from anyone else goes no further, so no handler runs, no
picture is downloaded and no job starts. Each
stranger hears one polite refusal, however many messages they send, until
the bot restarts. The operator (ADMIN_CHAT_ID) is always let in.

The hourly limit counts the jobs each user started in the last hour; a job
beyond it is refused with the time the user may go on. The operator is never
limited.
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.chat.i18n import locale_from_telegram
from bot.chat.watch import JobWatch
from bot.settings import Settings

log = logging.getLogger(__name__)

HOUR_S = 3600.0
PRUNE_OVER = 1_000      # users with hourly records before the ones older than an hour are dropped
REFUSED_KEPT = 10_000   # strangers remembered as already refused; a flood of new ones cannot grow it further


def refusal_text() -> str:
    return _("Sorry, this bot is private: it works only for the people its owner has invited. 🙏")


def limit_text(per_hour: int, wait_s: float) -> str:
    minutes = max(1, math.ceil(wait_s / 60))
    return (ngettext("⏳ That's {n} picture this hour, as many as I paint for one person.",
                     "⏳ That's {n} pictures this hour, as many as I paint for one person.",
                     per_hour).format(n=per_hour)
            + " " + ngettext("You can go on in {minutes} minute.", "You can go on in {minutes} minutes.",
                             minutes).format(minutes=minutes))


class AllowList(BaseMiddleware):
    """Lets through updates from allowed users only; tells each stranger once."""

    def __init__(self, settings: Settings, i18n: I18n, on_refusal: Callable[[], None] = lambda: None):
        self.settings = settings
        self.i18n = i18n
        self.allowed = settings.allowed_users
        self.on_refusal = on_refusal
        self._refused: OrderedDict[int, None] = OrderedDict()

    def allows(self, user: User) -> bool:
        if self.allowed is None or self.settings.is_admin(user.id) or user.id in self.allowed:
            return True
        return user.username is not None and user.username.lower() in self.allowed

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or self.allows(user):
            return await handler(event, data)
        first_time = user.id not in self._refused
        self._refused[user.id] = None
        self._refused.move_to_end(user.id)
        while len(self._refused) > REFUSED_KEPT:
            self._refused.popitem(last=False)
        if first_time:
            log.info("refused user %s: not in ALLOWED_USERS", user.id)
            self.on_refusal()
        # Before the language middleware: a stranger has no /lang choice, so the app's language it is.
        with self.i18n.context(), self.i18n.use_locale(locale_from_telegram(user)):
            await self._answer(event, first_time)
        return None

    @staticmethod
    async def _answer(update: TelegramObject, first_time: bool) -> None:
        try:
            if isinstance(update, Update) and isinstance(update.callback_query, CallbackQuery):
                # Always answered, or the button keeps spinning; the text only the first time.
                await update.callback_query.answer(refusal_text() if first_time else None)
            elif first_time and isinstance(update, Update) and isinstance(update.message, Message):
                await update.message.answer(refusal_text())
        except TelegramAPIError as e:
            log.info("could not refuse politely: %s", e)


class HourlyLimit(JobWatch):
    """At most per_hour jobs per user in any hour (0: no limit)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 on_refusal: Callable[[str], None] = lambda op: None):
        self.settings = settings
        self.per_hour = settings.jobs_per_hour
        self.clock = clock
        self.on_refusal = on_refusal
        self._started: dict[int, deque[float]] = {}

    def wait_s(self, user_id: int) -> float:
        """Seconds until this user may start a job; 0 when they may now."""
        if not self.per_hour or self.settings.is_admin(user_id):
            return 0.0
        started = self._started.get(user_id)
        if started is None:
            return 0.0
        now = self.clock()
        while started and started[0] <= now - HOUR_S:
            started.popleft()
        if not started:
            del self._started[user_id]
            return 0.0
        return started[0] + HOUR_S - now if len(started) >= self.per_hour else 0.0

    async def admit(self, message, job) -> bool:
        wait = 0.0 if self.settings.is_admin(job.chat_id) else self.wait_s(job.user_id)
        if wait <= 0:
            return True
        self.on_refusal(job.op)
        await message.answer(limit_text(self.per_hour, wait))
        return False

    def opened(self, delivery) -> None:
        if self.per_hour and not self.settings.is_admin(delivery.job.user_id):
            now = self.clock()
            self._started.setdefault(delivery.job.user_id, deque()).append(now)
            if len(self._started) > PRUNE_OVER:
                # Users who have not been back within the hour need no record.
                self._started = {user: s for user, s in self._started.items() if s and s[-1] > now - HOUR_S}
