"""Between the job queue and the chat: status messages, results, apologies.

Every submitted job gets a `Delivery`: the one status message that shows the
queue position and then the progress (edited at most about once a second),
and what to send when the result comes. JobQueue delivers one job's events in
order from one task, so a slow upload to one chat holds up nobody else.

The Delivery's lock makes /cancel and the result exclusive: either the result
went out before the cancel was confirmed, or nothing of the job arrives after.
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
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.i18n import profile_for
from bot.jobs import Job, JobDone, JobFailed, JobProgress, JobQueue, JobQueued, JobStarted, QueueFull, UserBusy
from bot.keyboards import result_menu
from bot.pictures import Picture, PictureRef, PictureStore
from bot.watch import JobWatch

log = logging.getLogger(__name__)

# Telegram's limits for sendPhoto; anything beyond goes as a document.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024
STATUS_EDIT_INTERVAL_S = 1.0
# A chat action shows for 5 seconds, so it is renewed a little sooner.
CHAT_ACTION_INTERVAL_S = 4.0
RESULTS_KEPT = 5   # per user, for the buttons under the latest results
NOTIFY_TIMEOUT_S = 3.0


@dataclass
class Delivery:
    job: Job
    locale: str
    as_document: bool                  # upscales keep every pixel: Telegram recompresses photos
    source: PictureRef | None          # the user's picture, for "try another style"
    describe_result: Callable[[JobDone], str] | None = None   # notes for the caption
    menu: Callable[[str], InlineKeyboardMarkup] | None = None  # the buttons under the result, by job id
    remember: dict | None = None       # kept with the result for its buttons (a sheet's paintings)
    status_message_id: int | None = None
    status_text: str = ""
    shown_text: str = ""
    last_edit: float = 0.0
    last_action: float = 0.0
    flush: asyncio.Task | None = None   # a delayed edit, while edits are throttled
    finished: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JobMessenger:
    def __init__(self, bot: Bot, i18n: I18n, storage: BaseStorage, pictures: PictureStore, *,
                 can_preview: bool = False):
        self.bot = bot
        self.i18n = i18n
        self.storage = storage
        self.pictures = pictures
        self.can_preview = can_preview   # there are preset paintings to preview a result's photo in
        self.queue: JobQueue | None = None   # set once the queue exists: it calls on_event
        self.watch = JobWatch()   # the ledger, the counters, the hourly limit (bot.watch)
        self._deliveries: dict[str, Delivery] = {}

    # -- the handlers' side ---------------------------------------------------

    def is_busy(self, user_id: int) -> bool:
        return self.queue.active_job(user_id) is not None

    async def submit(self, message: Message, job: Job, *, as_document: bool = False,
                     source: PictureRef | None = None,
                     describe_result: Callable[[JobDone], str] | None = None,
                     menu: Callable[[str], InlineKeyboardMarkup] | None = None,
                     remember: dict | None = None) -> bool:
        """Queue the job and post its status message; on refusal tell the user why."""
        if not await self.watch.admit(message, job):
            return False
        delivery = Delivery(job=job, locale=self.i18n.current_locale, as_document=as_document, source=source,
                            describe_result=describe_result, menu=menu, remember=remember)
        # Registered before submit: the queue may report on the job at once.
        self._deliveries[job.id] = delivery
        async with delivery.lock:
            try:
                ahead = self.queue.submit(job)
            except UserBusy:
                del self._deliveries[job.id]
                self.watch.refused(job, "busy")
                await message.answer(please_wait_text())
                return False
            except QueueFull:
                del self._deliveries[job.id]
                self.watch.refused(job, "full")
                await message.answer(_("I'm very busy right now and can't take more work. "
                                       "Please try again in a few minutes."))
                return False
            await self.watch.accepted(delivery)
            if not delivery.status_text:
                delivery.status_text = queued_text(ahead)
            status = await message.answer(delivery.status_text)
            delivery.status_message_id = status.message_id
            delivery.shown_text = delivery.status_text
            delivery.last_edit = time.monotonic()
            self.watch.opened(delivery)
        return True

    async def cancel(self, user_id: int) -> bool:
        """Cancel the user's job; True if there was one and nothing of it will arrive."""
        job = self.queue.active_job(user_id)
        cancelled_in_queue = self.queue.cancel(user_id)
        delivery = self._deliveries.get(job.id) if job else None
        if delivery is None:
            delivery = next((d for d in self._deliveries.values() if d.job.user_id == user_id), None)
        if delivery is None:
            return cancelled_in_queue
        async with delivery.lock:
            if delivery.finished:
                return False   # the result (or an apology) already went out
            self._close(delivery)
            self.watch.cancelled(delivery.job)
            await self._delete_status(delivery)
        return True

    async def tell_about_shutdown(self, jobs: list[Job]) -> None:
        """Jobs the queue dropped on shutdown: their users hear why, in time."""
        async def tell(job: Job) -> None:
            delivery = self._deliveries.get(job.id)
            if delivery is None:
                return
            async with delivery.lock:
                if delivery.finished:
                    return
                self._close(delivery)
                with self._speaking(delivery):
                    await self._show(delivery, restarting_text(), force=True)

        if jobs:
            try:
                await asyncio.wait_for(asyncio.gather(*(tell(j) for j in jobs), return_exceptions=True),
                                       NOTIFY_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("not every user heard about the shutdown in time")

    # -- the queue's side -----------------------------------------------------

    async def on_event(self, event) -> None:
        delivery = self._deliveries.get(event.job.id)
        if delivery is None:
            return
        self.watch.event(event)
        async with delivery.lock:
            if delivery.finished:
                return
            with self._speaking(delivery):
                if isinstance(event, JobQueued):
                    await self._on_queued(delivery, event)
                elif isinstance(event, JobStarted):
                    await self._on_started(delivery)
                elif isinstance(event, JobProgress):
                    await self._on_progress(delivery, event)
                elif isinstance(event, JobDone):
                    await self._on_done(delivery, event)
                elif isinstance(event, JobFailed):
                    await self._on_failed(delivery, event)

    async def _on_queued(self, delivery: Delivery, event: JobQueued) -> None:
        await self._show(delivery, queued_text(event.position))

    async def _on_started(self, delivery: Delivery) -> None:
        await self._show(delivery, _("⚙️ Working on your picture…"))
        await self._chat_action(delivery)

    async def _on_progress(self, delivery: Delivery, event: JobProgress) -> None:
        await self._show(delivery, progress_text(event.done, event.total))
        await self._chat_action(delivery)

    async def _on_done(self, delivery: Delivery, event: JobDone) -> None:
        caption = _("✅ Done in {seconds} s.").format(seconds=max(1, round(event.seconds)))
        if delivery.describe_result is not None:
            caption += "\n" + delivery.describe_result(event)
        elif event.downsized:
            caption += "\n" + _("Your picture was large, so I worked on a smaller copy.")
        job = delivery.job
        if delivery.menu is not None:
            markup = delivery.menu(job.id)
        else:
            markup = result_menu(job.id, can_upscale=job.op != "upscale",
                                 can_preview=self.can_preview and delivery.source is not None)
        try:
            sent = await self._send_result(delivery, event, caption, markup)
        except TelegramAPIError:
            log.exception("could not send the result of job %s", job.id)
            self._close(delivery)
            await self._show(delivery, _("😔 Sorry, your picture is ready but I couldn't send it. "
                                         "Please try again."), force=True)
            return
        self._close(delivery)
        await self._delete_status(delivery)
        await self._remember_result(delivery, event, sent)

    async def _on_failed(self, delivery: Delivery, event: JobFailed) -> None:
        self._close(delivery)
        await self._show(delivery, failure_text(event), force=True)

    # -- sending --------------------------------------------------------------

    async def _send_result(self, delivery: Delivery, event: JobDone, caption: str,
                           markup: InlineKeyboardMarkup) -> Message:
        job = delivery.job
        data, extension = event.data, job.output.replace("jpeg", "jpg")
        if delivery.as_document or not fits_photo_limits(len(data), event.width, event.height):
            if len(data) > DOCUMENT_MAX_BYTES:
                data, extension = await asyncio.to_thread(reencode_as_jpeg, data), "jpg"
            await self.bot.send_chat_action(job.chat_id, ChatAction.UPLOAD_DOCUMENT)
            document = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
            return await self.bot.send_document(job.chat_id, document, caption=caption, reply_markup=markup,
                                                disable_content_type_detection=True)
        await self.bot.send_chat_action(job.chat_id, ChatAction.UPLOAD_PHOTO)
        photo = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
        return await self.bot.send_photo(job.chat_id, photo, caption=caption, reply_markup=markup)

    async def _remember_result(self, delivery: Delivery, event: JobDone, sent: Message) -> None:
        """Keep what the buttons under the result need: the result itself and its source."""
        job = delivery.job
        attachment = sent.document or (sent.photo[-1] if sent.photo else None)
        if attachment is None:
            return
        result_ref = PictureRef(attachment.file_id, attachment.file_unique_id)
        self.pictures.put(job.user_id, result_ref.unique_id, Picture(result_ref, event.data, event.width,
                                                                     event.height))
        profile = profile_for(self.storage, self.bot.id, job.chat_id, job.user_id)
        results = dict((await profile.get_value("results")) or {})
        results[job.id] = {"result": result_ref.as_data(),
                           "source": delivery.source.as_data() if delivery.source else None,
                           **(delivery.remember or {})}
        while len(results) > RESULTS_KEPT:
            results.pop(next(iter(results)))
        await profile.update_data(results=results)

    async def _show(self, delivery: Delivery, text: str, *, force: bool = False) -> None:
        """Put text into the status message, editing at most once per interval unless forced."""
        delivery.status_text = text
        if delivery.status_message_id is None:
            # The handler posts the status message after submit; it shows the latest text.
            if force:
                sent = await self._safely(self.bot.send_message(delivery.job.chat_id, text))
                delivery.status_message_id = sent.message_id if sent else None
            return
        wait = delivery.last_edit + STATUS_EDIT_INTERVAL_S - time.monotonic()
        if wait > 0 and not force:
            # Too soon after the last edit: show the latest text when the interval is over.
            if delivery.flush is None:
                delivery.flush = asyncio.create_task(self._edit_later(delivery, wait))
            return
        self._stop_flush(delivery)
        await self._edit_status(delivery)

    async def _edit_later(self, delivery: Delivery, wait: float) -> None:
        await asyncio.sleep(wait)
        async with delivery.lock:
            delivery.flush = None
            if not delivery.finished:
                with self._speaking(delivery):
                    await self._edit_status(delivery)

    @staticmethod
    def _stop_flush(delivery: Delivery) -> None:
        if delivery.flush is not None:
            delivery.flush.cancel()
            delivery.flush = None

    async def _edit_status(self, delivery: Delivery) -> None:
        if delivery.status_text == delivery.shown_text:
            return
        delivery.last_edit = time.monotonic()
        delivery.shown_text = delivery.status_text
        await self._safely(self.bot.edit_message_text(text=delivery.status_text, chat_id=delivery.job.chat_id,
                                                      message_id=delivery.status_message_id))

    async def _delete_status(self, delivery: Delivery) -> None:
        if delivery.status_message_id is not None:
            await self._safely(self.bot.delete_message(delivery.job.chat_id, delivery.status_message_id))

    async def _chat_action(self, delivery: Delivery) -> None:
        now = time.monotonic()
        if now - delivery.last_action >= CHAT_ACTION_INTERVAL_S:
            delivery.last_action = now
            action = ChatAction.UPLOAD_DOCUMENT if delivery.as_document else ChatAction.UPLOAD_PHOTO
            await self._safely(self.bot.send_chat_action(delivery.job.chat_id, action))

    def _close(self, delivery: Delivery) -> None:
        if not delivery.finished:
            self.watch.closed(delivery)
        delivery.finished = True
        self._stop_flush(delivery)
        self._deliveries.pop(delivery.job.id, None)

    def _speaking(self, delivery: Delivery):
        """Texts in the language the user had when submitting (events arrive outside handlers)."""
        return _LocaleContext(self.i18n, delivery.locale)

    @staticmethod
    async def _safely(request):
        """Status updates are a courtesy: a user who blocked the bot must not stop the job's delivery."""
        try:
            return await request
        except TelegramBadRequest as e:
            log.info("status update refused: %s", e.message)
        except TelegramAPIError as e:
            log.warning("status update failed: %s", e)
        return None


class _LocaleContext:
    def __init__(self, i18n: I18n, locale: str):
        self.i18n, self.locale = i18n, locale

    def __enter__(self):
        self._context = self.i18n.context()
        self._context.__enter__()
        self._locale = self.i18n.use_locale(self.locale)
        self._locale.__enter__()

    def __exit__(self, *exc):
        self._locale.__exit__(*exc)
        self._context.__exit__(*exc)


def fits_photo_limits(size_bytes: int, width: int, height: int) -> bool:
    return (size_bytes <= PHOTO_MAX_BYTES and width + height <= PHOTO_MAX_SIDES_SUM
            and max(width, height) <= PHOTO_MAX_RATIO * min(width, height))


def reencode_as_jpeg(data: bytes) -> bytes:
    """A PNG too big for Telegram's document limit; JPEG at high quality fits."""
    from nets.imageio import encode_jpeg, load_image
    return encode_jpeg(load_image(data, max_pixels=200_000_000), quality=95)


def please_wait_text() -> str:
    return _("⏳ I'm still working on your previous picture. Please wait for it, or send /cancel to stop it.")


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


def failure_text(event: JobFailed) -> str:
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
