"""A job's status message: the queue position, then the progress, edited in place and paced.

Every submitted job gets a `Delivery`: the one status message that shows the
queue position and then the progress (edited at most every few seconds, paced
per chat by bot/chat/flood.py), and what to send when the result comes
(bot/chat/results.py). Progress edits and chat actions never wait for flood
control: a 429 drops them and pauses that chat's edits for retry_after (the
delivery's lock is never held asleep).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.chat.flood import ChatPacer
from bot.chat.i18n import in_locale
from bot.chat.pictures import PictureRef
from bot.jobs.job import Job, JobDone, JobFailed

log = logging.getLogger(__name__)

# A chat action shows for 5 seconds, so it is renewed a little sooner.
CHAT_ACTION_INTERVAL_S = 4.0
SEND_ERRORS = (TelegramAPIError, ClientDecodeError)


@dataclass
class Delivery:
    job: Job
    locale: str
    as_document: bool                  # upscales keep every pixel: Telegram recompresses photos
    source: PictureRef | None          # the user's picture, for "try another style"
    describe_result: Callable[[JobDone], str] | None = None   # notes for the caption
    menu: Callable[[str], InlineKeyboardMarkup] | None = None  # the buttons under the result, by job id
    remember: dict | None = None       # kept with the result for its buttons (a sheet's paintings)
    batch: object | None = None        # the bot.chat.batch.Batch this job is one picture of: it gets the
                                       # result or the failure, and its status message is the batch's
    heading: str = ""                  # a line above every status text (a batch's "3 of 7")
    status_message_id: int | None = None
    thread_id: int | None = None       # the forum topic the job came from
    status_text: str = ""
    shown_text: str = ""
    last_action: float = 0.0
    flush: asyncio.Task | None = None   # a delayed edit, while edits are throttled
    finished: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StatusMessages:
    """Shows each delivery's status text: posted once, then edited as the pacer allows."""

    def __init__(self, bot: Bot, i18n: I18n):
        self.bot = bot
        self.i18n = i18n
        self.pacer = ChatPacer()
        self._later: set[asyncio.Task] = set()   # edits put off by flood control

    async def show(self, delivery: Delivery, text: str, *, force: bool = False) -> None:
        """Put text into the status message, editing at most once per interval unless forced."""
        delivery.status_text = f"{delivery.heading}\n{text}" if delivery.heading else text
        if delivery.status_message_id is None:
            # The handler posts the status message after submit; it shows the latest text.
            if force:
                sent = await self.safely(self.bot.send_message(delivery.job.chat_id, text,
                                                               message_thread_id=delivery.thread_id))
                delivery.status_message_id = sent.message_id if sent else None
            return
        wait = self.pacer.wait(delivery.job.chat_id)
        if wait > 0 and not force:
            # Too soon after the last edit in this chat: show the latest text when the interval is over.
            if delivery.flush is None:
                delivery.flush = asyncio.create_task(self._edit_later(delivery, wait))
            return
        self.stop_flush(delivery)
        await self._edit_status(delivery, final=force)

    async def _edit_later(self, delivery: Delivery, wait: float) -> None:
        await asyncio.sleep(wait)   # outside the lock: the result and /cancel go on meanwhile
        async with delivery.lock:
            delivery.flush = None
            if delivery.finished:
                return
            if (wait := self.pacer.wait(delivery.job.chat_id)) > 0:   # paused by a 429 meanwhile
                delivery.flush = asyncio.create_task(self._edit_later(delivery, wait))
                return
            with in_locale(self.i18n, delivery.locale):
                await self._edit_status(delivery)

    @staticmethod
    def stop_flush(delivery: Delivery) -> None:
        if delivery.flush is not None:
            delivery.flush.cancel()
            delivery.flush = None

    async def _edit_status(self, delivery: Delivery, *, final: bool = False) -> None:
        if delivery.status_text == delivery.shown_text:
            return
        chat_id, message_id, text = delivery.job.chat_id, delivery.status_message_id, delivery.status_text
        try:
            await self.bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
        except TelegramRetryAfter as e:
            # Dropped, not waited for: the next progress brings a newer text anyway.
            log.info("flood control on chat %s: edits paused for %s s", chat_id, e.retry_after)
            self.pacer.pause(chat_id, e.retry_after)
            if final:   # the last word (an apology) is not dropped: it goes once the pause is over
                self._run_later(e.retry_after, self.safely(
                    self.bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)))
            return
        except SEND_ERRORS as e:
            log.info("status update refused: %s", e)
        delivery.shown_text = text
        self.pacer.edited(chat_id)

    def _run_later(self, delay: float, request) -> None:
        async def later():
            await asyncio.sleep(delay)
            await request
        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def delete_status(self, delivery: Delivery) -> None:
        if delivery.status_message_id is not None:
            await self.safely(self.bot.delete_message(delivery.job.chat_id, delivery.status_message_id))

    async def chat_action(self, delivery: Delivery, action: ChatAction | None = None, *, paced: bool = True) -> None:
        """ "Sending a photo…" at the top of the chat: a courtesy, so it gives way to flood control."""
        chat_id = delivery.job.chat_id
        now = time.monotonic()
        if self.pacer.paused(chat_id) or (paced and now - delivery.last_action < CHAT_ACTION_INTERVAL_S):
            return
        delivery.last_action = now
        if action is None:
            action = ChatAction.UPLOAD_DOCUMENT if delivery.as_document else ChatAction.UPLOAD_PHOTO
        try:
            await self.bot.send_chat_action(chat_id, action, message_thread_id=delivery.thread_id)
        except TelegramRetryAfter as e:
            self.pacer.pause(chat_id, e.retry_after)
        except SEND_ERRORS as e:
            log.info("chat action refused: %s", e)

    @staticmethod
    async def safely(request):
        """Status updates are a courtesy: a user who blocked the bot must not stop the job's delivery."""
        try:
            return await request
        except TelegramBadRequest as e:
            log.info("status update refused: %s", e.message)
        except SEND_ERRORS as e:
            log.warning("status update failed: %s", e)
        return None


def please_wait_text() -> str:
    return _("⏳ I'm still working on your previous picture. Please wait for it, or send /cancel to stop it.")


def unavailable_text() -> str:
    return _("😔 Sorry, I can't take pictures right now: my job queue is out of reach. "
             "Please try again in a few minutes.")


def queued_text(ahead: int) -> str:
    if ahead <= 0:
        return _("⚙️ Starting…")
    return ngettext("🕐 In the queue: {n} job ahead of yours.",
             "🕐 In the queue: {n} jobs ahead of yours.", ahead).format(n=ahead)


def progress_text(done: int, total: int) -> str:
    fraction = done / total if total > 0 else 0.0
    filled = math.floor(fraction * 10)
    bar = "▰" * filled + "▱" * (10 - filled)
    return _("🎨 Painting… {bar} {percent}%").format(bar=bar, percent=round(fraction * 100))


def failure_text(event: JobFailed | None) -> str:
    if event is None:
        return _("😔 Sorry, something went wrong while I was working on your picture. Please try again.")
    if event.reason == "input":
        if event.code == "too_large":
            return _("😔 Sorry, this picture is too large for me to process. Please send a smaller one.")
        return _("😔 Sorry, I couldn't read this picture. Please try another one.")
    if event.reason == "timeout":
        return _("😔 Sorry, this took too long and I had to stop. Try a smaller picture or the fast mode.")
    if event.reason == "worker_died":
        return _("😔 Sorry, the part of me that paints crashed while working on your picture. "
                 "It has restarted — please try again.")
    if event.reason == "shutdown":
        return restarting_text()
    if event.code == "out_of_memory":
        return _("😔 Sorry, this picture is too big for my memory. Please send a smaller one, or crop it.")
    return _("😔 Sorry, something went wrong while I was working on your picture. Please try again.")


def restarting_text() -> str:
    return _("⚠️ The bot is restarting, so I had to stop working on your picture. "
             "Please send it again in a minute.")
