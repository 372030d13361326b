"""Between the job queue and the chat: status messages, results, apologies.

Every submitted job gets a `Delivery`: the one status message that shows the
queue position and then the progress (edited at most every few seconds, paced
per chat by bot/flood.py), and what to send when the result comes. JobQueue
delivers one job's events in order from one task, so a slow upload to one chat
holds up nobody else. Results go to the forum topic the job came from.

The Delivery's lock makes /cancel and the result exclusive: either the result
went out before the cancel was confirmed, or nothing of the job arrives after.
Progress edits and chat actions never wait for flood control: a 429 drops them
and pauses that chat's edits for retry_after (the lock is never held asleep).

A result that cannot be delivered is never lost and never sent twice unasked.
bot/retry.py retries what surely did not reach Telegram; when the connection
broke after the upload went out, Telegram may or may not have posted it, and
the Bot API cannot tell us which. Then a note below says so, with a "send it
again" button: the user, who sees the chat, decides. The same button comes
with the apology (in the status message) when every retry failed. A refused sendPhoto
(PHOTO_INVALID_DIMENSIONS, IMAGE_PROCESS_FAILED, 413) is sent once as a document.
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
from aiogram.exceptions import (ClientDecodeError, TelegramAPIError, TelegramBadRequest, TelegramNetworkError,
                                TelegramRetryAfter)
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.i18n import profile_for
from bot.flood import ChatPacer
from bot.jobs import Job, JobDone, JobFailed, JobProgress, JobQueue, JobQueued, JobStarted, QueueFull, UserBusy
from bot.keyboards import resend_menu, result_menu
from bot.pictures import Picture, PictureRef, PictureStore
from bot.retry import is_entity_too_large, never_reached_telegram
from bot.watch import JobWatch

log = logging.getLogger(__name__)

# Telegram's limits for sendPhoto; anything beyond goes as a document.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024
# A chat action shows for 5 seconds, so it is renewed a little sooner.
CHAT_ACTION_INTERVAL_S = 4.0
RESULTS_KEPT = 5   # per user, for the buttons under the latest results
UNSENT_KEPT = 20   # results waiting for "send it again", all users together (they hold the bytes)
NOTIFY_TIMEOUT_S = 3.0
# Uploads get the default minute plus time for their bytes at a slow 200 KB/s.
UPLOAD_BASE_TIMEOUT_S = 60
UPLOAD_BYTES_PER_S = 200 * 1024
# sendPhoto refusals the pre-checks can miss; a document is sent instead.
PHOTO_REFUSALS = ("PHOTO_", "IMAGE_PROCESS_FAILED", "wrong type of the web page content")
SEND_ERRORS = (TelegramAPIError, ClientDecodeError)


def upload_timeout(size_bytes: int) -> int:
    return UPLOAD_BASE_TIMEOUT_S + size_bytes // UPLOAD_BYTES_PER_S


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
    thread_id: int | None = None       # the forum topic the job came from
    status_text: str = ""
    shown_text: str = ""
    last_action: float = 0.0
    flush: asyncio.Task | None = None   # a delayed edit, while edits are throttled
    finished: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Unsent:
    """A finished result that did not (surely) reach the user: kept for "send it again"."""
    delivery: Delivery
    event: JobDone
    caption: str
    markup: InlineKeyboardMarkup


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
        self.pacer = ChatPacer()
        self._deliveries: dict[str, Delivery] = {}
        self._unsent: dict[str, Unsent] = {}
        self._later: set[asyncio.Task] = set()   # edits put off by flood control

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
                            describe_result=describe_result, menu=menu, remember=remember,
                            thread_id=message.message_thread_id if getattr(message, "is_topic_message", None)
                            else None)
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
            # The job is queued now: a status message that fails to go out must not look like a failure.
            status = await self._safely(message.answer(delivery.status_text))
            if status is not None:
                delivery.status_message_id = status.message_id
                delivery.shown_text = delivery.status_text
                self.pacer.edited(job.chat_id)
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
                try:
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
                except Exception:
                    # Whatever broke, the status must not stay stuck, nor /cancel "cancel" it later.
                    log.exception("delivering %s of job %s failed", type(event).__name__, delivery.job.id)
                    if not delivery.finished:
                        self._close(delivery)
                        await self._show(delivery, failure_text(None), force=True)

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
        unsent = Unsent(delivery, event, caption, markup)
        try:
            sent = await self._send_result(unsent)
        except SEND_ERRORS as e:
            self._close(delivery)
            await self._keep_unsent(unsent, e)
            return
        self._close(delivery)
        await self._delete_status(delivery)
        await self._remember_result(delivery, event, sent)

    async def _keep_unsent(self, unsent: Unsent, error: Exception) -> None:
        """The result did not surely arrive: say so, with "send it again", and keep it for that button.

        A lost answer gets a new message, below where the picture is if it did arrive; a
        sure failure turns the status message into the apology."""
        delivery = unsent.delivery
        lost_answer = isinstance(error, (TelegramNetworkError, ClientDecodeError)) and not (
            never_reached_telegram(error) or is_entity_too_large(error))
        log.warning("the result of job %s did not %s: %s", delivery.job.id,
                    "surely arrive" if lost_answer else "go out", error)
        self._unsent[delivery.job.id] = unsent
        while len(self._unsent) > UNSENT_KEPT:
            self._unsent.pop(next(iter(self._unsent)))
        if lost_answer:
            text = _("📬 Your picture is ready, but the connection to Telegram broke while I was sending it, "
                     "so it may or may not have arrived. If it isn't just above, tap the button and I'll send "
                     "it again.")
        else:
            text = _("😔 Sorry, your picture is ready but I couldn't send it. Tap the button to try again.")
        markup = resend_menu(delivery.job.id)
        chat_id, message_id = delivery.job.chat_id, delivery.status_message_id
        shown = None
        if lost_answer:
            # A new message, below where the picture would be: "just above" then holds.
            await self._delete_status(delivery)
        elif message_id is not None:
            shown = await self._safely(self.bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id,
                                                                  reply_markup=markup))
        if shown is None:
            await self._safely(self.bot.send_message(chat_id, text, reply_markup=markup,
                                                     message_thread_id=delivery.thread_id))

    async def resend(self, user_id: int, job_id: str) -> bool | None:
        """The "send it again" button: True when sent, False when it failed again, None when long gone."""
        unsent = self._unsent.get(job_id)
        if unsent is None or unsent.delivery.job.user_id != user_id:
            return None
        delivery = unsent.delivery
        with self._speaking(delivery):
            try:
                sent = await self._send_result(unsent)
            except SEND_ERRORS as e:
                log.warning("sending the result of job %s again failed: %s", job_id, e)
                return False
        self._unsent.pop(job_id, None)
        await self._remember_result(delivery, unsent.event, sent)
        return True

    async def _on_failed(self, delivery: Delivery, event: JobFailed) -> None:
        self._close(delivery)
        await self._show(delivery, failure_text(event), force=True)

    # -- sending --------------------------------------------------------------

    async def _send_result(self, unsent: Unsent) -> Message:
        delivery, event = unsent.delivery, unsent.event
        job = delivery.job
        data, extension = event.data, job.output.replace("jpeg", "jpg")
        if not delivery.as_document and fits_photo_limits(len(data), event.width, event.height):
            await self._chat_action(delivery, ChatAction.UPLOAD_PHOTO, paced=False)
            photo = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
            try:
                return await self.bot.send_photo(job.chat_id, photo, caption=unsent.caption,
                                                 reply_markup=unsent.markup, message_thread_id=delivery.thread_id,
                                                 request_timeout=upload_timeout(len(data)))
            except (TelegramBadRequest, TelegramNetworkError, ClientDecodeError) as e:
                if not (is_entity_too_large(e) or (isinstance(e, TelegramBadRequest)
                                                   and any(r in e.message for r in PHOTO_REFUSALS))):
                    raise
                log.info("sendPhoto refused for job %s (%s); sending it as a document", job.id, e)
        if len(data) > DOCUMENT_MAX_BYTES:
            data, extension = await asyncio.to_thread(reencode_as_jpeg, data), "jpg"
        await self._chat_action(delivery, ChatAction.UPLOAD_DOCUMENT, paced=False)
        document = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
        return await self.bot.send_document(job.chat_id, document, caption=unsent.caption, reply_markup=unsent.markup,
                                            disable_content_type_detection=True,
                                            message_thread_id=delivery.thread_id,
                                            request_timeout=upload_timeout(len(data)))

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
                sent = await self._safely(self.bot.send_message(delivery.job.chat_id, text,
                                                                message_thread_id=delivery.thread_id))
                delivery.status_message_id = sent.message_id if sent else None
            return
        wait = self.pacer.wait(delivery.job.chat_id)
        if wait > 0 and not force:
            # Too soon after the last edit in this chat: show the latest text when the interval is over.
            if delivery.flush is None:
                delivery.flush = asyncio.create_task(self._edit_later(delivery, wait))
            return
        self._stop_flush(delivery)
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
            with self._speaking(delivery):
                await self._edit_status(delivery)

    @staticmethod
    def _stop_flush(delivery: Delivery) -> None:
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
                self._run_later(e.retry_after, self._safely(
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

    async def _delete_status(self, delivery: Delivery) -> None:
        if delivery.status_message_id is not None:
            await self._safely(self.bot.delete_message(delivery.job.chat_id, delivery.status_message_id))

    async def _chat_action(self, delivery: Delivery, action: ChatAction | None = None, *, paced: bool = True) -> None:
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
        except SEND_ERRORS as e:
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
