"""An album upscaled as one batch: one job after another, one status message, one album back.

The job backend keeps one job per user (bot/jobs/backend.py), so a batch
submits its pictures through JobMessenger one after another: each job opens
like any other (so JOBS_PER_HOUR counts every picture, and the ledger and
/stats see each), but shows itself in the batch's status message under "3 of
7", and hands its result or failure back here instead of to the chat. When
the last picture is done the results go out together as an album of
documents (sendMediaGroup, 2 to 10 items, a caption each), then one line says
what became of each picture. A picture that is damaged or too large is named
there and the others go on; /cancel stops the rest and sends what is done; a
refusal (the hourly limit, a full queue) stops the rest the same way, after
the refusal has said why.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiogram.types import BufferedInputFile, InputMediaDocument, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.chat.i18n import in_locale
from bot.chat.pictures import Picture, PictureRef, PictureRejected
from bot.chat.results import DOCUMENT_MAX_BYTES, reencode_as_jpeg, upload_timeout
from bot.chat.status import SEND_ERRORS, failure_text
from bot.jobs.job import Job, JobDone, JobFailed

log = logging.getLogger(__name__)

ALBUM_MAX = 10   # Telegram's limit for an album, the user's and ours

MakeJob = Callable[[Picture], Job | str]    # the job for a picture, or why there is none (too slow here)
Describe = Callable[[Picture, JobDone], str]   # one result's caption


@dataclass
class Done:
    number: int          # the picture's place in the album, from 1
    picture: Picture
    event: JobDone


class Batch:
    def __init__(self, messenger, chat: Message, user_id: int, refs: list[PictureRef | str], *,
                 make_job: MakeJob, describe: Describe, locale: str):
        self.messenger = messenger
        self.chat = chat                      # a message in the user's chat, to answer to
        self.user_id = user_id
        self.locale = locale
        self.make_job = make_job
        self.describe = describe
        self.total = len(refs)
        self._waiting = list(enumerate(refs, start=1))
        self.number = 0                       # the picture in the works
        self.picture: Picture | None = None
        self.done: list[Done] = []
        self.failed: list[tuple[int, str]] = []   # (number, why), in the user's words
        self.not_started = 0
        self.status_message_id: int | None = None
        self.started = time.monotonic()
        self.stopped = False
        self.cancelled = False
        self.finished = False

    def heading(self) -> str:
        return _("🔍 Upscaling your album: picture {n} of {total}").format(n=self.number, total=self.total)

    async def start(self) -> None:
        self.messenger.batches[self.user_id] = self
        with in_locale(self.messenger.i18n, self.locale):
            sent = await self.messenger.status.safely(self.chat.answer(
                ngettext("🔍 Upscaling your album of {n} picture…", "🔍 Upscaling your album of {n} pictures…",
                         self.total).format(n=self.total)))
        self.status_message_id = sent.message_id if sent else None
        await self._next()

    async def _next(self) -> None:
        """Submit the next picture that opens; finish when none is left (or the batch stopped).

        A ref that is a text is a part that was never a usable picture: the text says why."""
        while self._waiting and not self.stopped:
            self.number, ref = self._waiting.pop(0)
            if isinstance(ref, str):
                self.failed.append((self.number, ref))
                continue
            try:
                self.picture = await self.messenger.pictures.fetch(self.messenger.bot, self.user_id, ref)
            except PictureRejected as e:
                self.failed.append((self.number, e.text))
                continue
            except SEND_ERRORS as e:   # getFile or the download failed: this one is lost, the rest go on
                log.warning("could not fetch picture %d of a batch: %s", self.number, e)
                self.failed.append((self.number, failure_text(None)))
                continue
            if self.stopped:   # /cancel came while the picture downloaded
                break
            with in_locale(self.messenger.i18n, self.locale):
                job = self.make_job(self.picture)
                if isinstance(job, str):
                    self.failed.append((self.number, job))
                    continue
                submitted = await self.messenger.submit(self.chat, job, as_document=True, source=self.picture.ref,
                                                        batch=self)
            if submitted:
                return   # picture_done or picture_failed carries on
            self.not_started = len(self._waiting) + 1   # refused: the refusal said why
            break
        await self._finish()

    async def picture_done(self, event: JobDone) -> None:
        self.done.append(Done(self.number, self.picture, event))
        await self._next()

    async def picture_failed(self, event: JobFailed) -> None:
        self.failed.append((self.number, failure_text(event)))
        await self._next()

    async def cancel(self) -> None:
        """/cancel: the picture in the works is dropped (the messenger saw to it), the rest never start."""
        self.stopped = self.cancelled = True
        self.not_started = len(self._waiting)
        self._waiting.clear()
        await self._finish()

    async def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.messenger.batches.pop(self.user_id, None)
        with in_locale(self.messenger.i18n, self.locale):
            sent = await self._send_results()
            if self.status_message_id is not None:   # the summary below takes its place
                await self.messenger.status.safely(self.messenger.bot.delete_message(self.chat.chat.id,
                                                                                     self.status_message_id))
            await self.messenger.status.safely(self.chat.answer(self.summary(sent)))

    async def _send_results(self) -> bool:
        """The results as one album (or one document when only one is done); False if that failed."""
        if not self.done:
            return True
        bot, chat_id = self.messenger.bot, self.chat.chat.id
        thread = self.chat.message_thread_id if getattr(self.chat, "is_topic_message", None) else None
        files = []
        for item in self.done:
            data, extension = item.event.data, item.event.job.output.replace("jpeg", "jpg")
            if len(data) > DOCUMENT_MAX_BYTES:
                data, extension = await asyncio.to_thread(reencode_as_jpeg, data), "jpg"
            files.append((BufferedInputFile(data, filename=f"stylebot-upscale-{item.number}.{extension}"),
                          f"{item.number}. {self.describe(item.picture, item.event)}", len(data)))
        timeout = upload_timeout(sum(size for _, _, size in files))
        try:
            if len(files) == 1:
                document, caption, _size = files[0]
                await bot.send_document(chat_id, document, caption=caption, disable_content_type_detection=True,
                                        message_thread_id=thread, request_timeout=timeout)
            else:
                await bot.send_media_group(chat_id, [InputMediaDocument(media=document, caption=caption,
                                                                        disable_content_type_detection=True)
                                                     for document, caption, _size in files],
                                           message_thread_id=thread, request_timeout=timeout)
        except SEND_ERRORS as e:
            log.warning("the album of a batch did not go out: %s", e)
            return False
        return True

    def summary(self, sent: bool) -> str:
        seconds = max(1, round(time.monotonic() - self.started))
        done = len(self.done)
        if self.cancelled:
            lines = [ngettext("🛑 Stopped. {done} of {total} pictures was done: it's above.",
                              "🛑 Stopped. {done} of {total} pictures were done: they're above.",
                              done).format(done=done, total=self.total) if done else
                     _("🛑 Stopped before any picture was done.")]
        else:
            lines = [ngettext("✅ Your album is upscaled: {done} of {total} picture in {seconds} s.",
                              "✅ Your album is upscaled: {done} of {total} pictures in {seconds} s.",
                              self.total).format(done=done, total=self.total, seconds=seconds)]
        if not sent:
            lines.append(_("😔 Sorry, the upscaled pictures are ready but I couldn't send them. "
                           "Please send the album again in a minute."))
        for number, why in sorted(self.failed):
            lines.append(_("❌ Picture {n}: {why}").format(n=number, why=why))
        if self.not_started and not self.cancelled:
            lines.append(ngettext("⏸ {n} picture was not started.", "⏸ {n} pictures were not started.",
                                  self.not_started).format(n=self.not_started))
        return "\n".join(lines)
