"""Between the job backend and the chat: each job's status message, its result, its apology.

JobMessenger takes the handlers' jobs to the backend (bot/jobs) and turns the
backend's events into what the user sees: the status message
(bot/chat/status.py), then the result (bot/chat/results.py) or an apology.
The backend delivers one job's events in order from one task, so a slow
upload to one chat holds up nobody else.

The Delivery's lock makes /cancel and the result exclusive: either the result
went out before the cancel was confirmed, or nothing of the job arrives after.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.chat.i18n import in_locale
from bot.chat.keyboards import result_menu, sheet_menu
from bot.chat.pictures import PictureRef, PictureStore
from bot.chat.results import ResultSender, Unsent
from bot.chat.upscale_options import UpscaleClock, device_model
from bot.chat.status import (SEND_ERRORS, Delivery, StatusMessages, failure_text, please_wait_text, progress_text,
                             queued_text, restarting_text, unavailable_text)
from bot.chat.watch import JobWatch
from bot.jobs.backend import JobBackend
from bot.jobs.job import (BackendUnavailable, Job, JobDone, JobFailed, JobProgress, JobQueued, JobStarted, QueueFull,
                          UserBusy)

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_S = 3.0


class JobMessenger:
    def __init__(self, bot: Bot, i18n: I18n, storage: BaseStorage, pictures: PictureStore, *,
                 can_preview: bool = False):
        self.bot = bot
        self.i18n = i18n
        self.storage = storage
        self.pictures = pictures
        self.can_preview = can_preview   # there are preset paintings to preview a result's photo in
        self.queue: JobBackend | None = None   # set once the backend exists: it calls on_event
        self.watch = JobWatch()   # the ledger, the counters, the hourly limit (bot.chat.watch)
        self.status = StatusMessages(bot, i18n)
        self.results = ResultSender(bot, i18n, storage, pictures, self.status)
        self._deliveries: dict[str, Delivery] = {}
        self.batches: dict[int, object] = {}   # user id -> their running bot.chat.batch.Batch
        self.upscale_clock = UpscaleClock()    # how long upscaling takes here, learned from finished jobs

    # -- the handlers' side ---------------------------------------------------

    def is_busy(self, user_id: int) -> bool:
        return self.queue.active_job(user_id) is not None or user_id in self.batches

    def device(self) -> str:
        """The device the ready workers run on ("cpu" until one is ready)."""
        about = self.queue.workers_about() if self.queue is not None else []
        return str(about[0].get("device", "cpu")) if about else "cpu"

    async def submit(self, message: Message, job: Job, *, as_document: bool = False,
                     source: PictureRef | None = None,
                     describe_result: Callable[[JobDone], str] | None = None,
                     menu: Callable[[str], InlineKeyboardMarkup] | None = None,
                     remember: dict | None = None, batch=None, heading: str = "") -> bool:
        """Queue the job and post its status message; on refusal tell the user why.

        heading: a line above the status (how long the job will take, say).
        batch: the job is one picture of a bot.chat.batch.Batch: the batch's status
        message shows it (under the batch's heading), and the batch gets its end."""
        if not await self.watch.admit(message, job):
            return False
        delivery = Delivery(job=job, locale=self.i18n.current_locale, as_document=as_document, source=source,
                            describe_result=describe_result, menu=menu, remember=remember,
                            thread_id=message.message_thread_id if getattr(message, "is_topic_message", None)
                            else None, heading=heading)
        if batch is not None:
            delivery.batch, delivery.heading = batch, batch.heading()
            delivery.status_message_id = batch.status_message_id
        # Registered before submit: the queue may report on the job at once.
        self._deliveries[job.id] = delivery
        async with delivery.lock:
            try:
                ahead = await self.queue.submit(job)
            except BackendUnavailable:
                del self._deliveries[job.id]
                self.watch.refused(job, "down")
                await message.answer(unavailable_text())
                return False
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
            if delivery.batch is not None and delivery.status_message_id is not None:
                if not delivery.status_text:   # the batch's message, edited: no new one per picture
                    await self.status.show(delivery, queued_text(ahead))
            else:
                if not delivery.status_text:
                    delivery.status_text = "\n".join(filter(None, (heading, queued_text(ahead))))
                # The job is queued now: a status message that fails to go out must not look like a failure.
                status = await self.status.safely(message.answer(delivery.status_text))
                if status is not None:
                    delivery.status_message_id = status.message_id
                    delivery.shown_text = delivery.status_text
                    self.status.pacer.edited(job.chat_id)
            self.watch.opened(delivery)
        return True

    def adopt(self, job: Job, record: dict) -> None:
        """A job an earlier run of the bot submitted, still going (JOB_BACKEND=celery): its status message
        and result go on as if nothing happened. `record` is what bot.operator.ledger kept of it
        (bot.chat.watch.delivery_record); the caption's extra notes were not kept, the buttons are rebuilt."""
        sheet = (record.get("remember") or {}).get("sheet")
        delivery = Delivery(job=job, locale=record.get("locale") or self.i18n.default_locale,
                            as_document=bool(record.get("as_document", job.op == "upscale")),
                            source=PictureRef.from_data(record.get("source")),
                            menu=(lambda job_id: sheet_menu(job_id, len(sheet))) if sheet else None,
                            remember=record.get("remember"), status_message_id=record.get("status_message_id"),
                            thread_id=record.get("thread_id"))
        self._deliveries[job.id] = delivery

    async def cancel(self, user_id: int) -> bool:
        """Cancel the user's job; True if there was one and nothing of it will arrive.

        A batch stops: the picture in the works is dropped, the ones done are sent (the batch's own doing)."""
        batch = self.batches.get(user_id)
        job = self.queue.active_job(user_id)
        cancelled_in_queue = await self.queue.cancel(user_id)
        delivery = self._deliveries.get(job.id) if job else None
        if delivery is None:
            delivery = next((d for d in self._deliveries.values() if d.job.user_id == user_id), None)
        stopped = False
        if delivery is not None:
            async with delivery.lock:
                if not delivery.finished:   # else the result (or an apology) already went out
                    self._close(delivery)
                    self.watch.cancelled(delivery.job)
                    if delivery.batch is None:
                        await self.status.delete_status(delivery)
                    stopped = True
        if batch is not None:
            await batch.cancel()
            return True
        return stopped if delivery is not None else cancelled_in_queue

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
                with in_locale(self.i18n, delivery.locale):
                    await self.status.show(delivery, restarting_text(), force=True)

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
            with in_locale(self.i18n, delivery.locale):
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
                        await self.status.show(delivery, failure_text(None), force=True)

    async def _on_queued(self, delivery: Delivery, event: JobQueued) -> None:
        await self.status.show(delivery, queued_text(event.position))

    async def _on_started(self, delivery: Delivery) -> None:
        await self.status.show(delivery, _("⚙️ Working on your picture…"))
        await self.status.chat_action(delivery)

    async def _on_progress(self, delivery: Delivery, event: JobProgress) -> None:
        await self.status.show(delivery, progress_text(event.done, event.total))
        await self.status.chat_action(delivery)

    async def _on_done(self, delivery: Delivery, event: JobDone) -> None:
        job = delivery.job
        if job.op == "upscale" and job.options.get("scale"):
            model = job.options.get("model") or "auto"
            model = device_model(self.device()) if model == "auto" else model
            self.upscale_clock.record(self.device(), model, event.width * event.height // job.options["scale"] ** 2,
                                      event.seconds)
        if delivery.batch is not None:
            self._close(delivery)
            await delivery.batch.picture_done(event)
            return
        caption = _("✅ Done in {seconds} s.").format(seconds=max(1, round(event.seconds)))
        if delivery.describe_result is not None:
            caption += "\n" + delivery.describe_result(event)
        elif event.downsized:
            caption += "\n" + _("Your picture was large, so I worked on a smaller copy.")
        if delivery.menu is not None:
            markup = delivery.menu(job.id)
        else:
            markup = result_menu(job.id, can_upscale=job.op != "upscale",
                                 can_preview=self.can_preview and delivery.source is not None,
                                 can_mix=bool((delivery.remember or {}).get("mix")) and delivery.source is not None)
        unsent = Unsent(delivery, event, caption, markup)
        try:
            sent = await self.results.send(unsent)
        except SEND_ERRORS as e:
            self._close(delivery)
            await self.results.keep_unsent(unsent, e)
            return
        self._close(delivery)
        # Remembered before the status goes: once the picture is there, its buttons work.
        await self.results.remember(delivery, event, sent)
        await self.status.delete_status(delivery)

    async def resend(self, user_id: int, job_id: str) -> bool | None:
        """The "send it again" button: True when sent, False when it failed again, None when long gone."""
        return await self.results.resend(user_id, job_id)

    async def _on_failed(self, delivery: Delivery, event: JobFailed) -> None:
        self._close(delivery)
        if delivery.batch is not None:
            await delivery.batch.picture_failed(event)
            return
        await self.status.show(delivery, failure_text(event), force=True)

    def _close(self, delivery: Delivery) -> None:
        if not delivery.finished:
            self.watch.closed(delivery)
        delivery.finished = True
        self.status.stop_flush(delivery)
        self._deliveries.pop(delivery.job.id, None)
