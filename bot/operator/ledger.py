"""The jobs in flight, kept in Redis, so that users hear of jobs an abrupt end lost.

A clean stop tells the users of unfinished jobs itself (JobMessenger.
tell_about_shutdown). An out-of-memory kill, `docker kill` or a host that
goes away does not; so every queued or running job has a record in Redis
(a hash, job id -> user, chat, language, operation, status message) from the
moment its status message is posted until it ends. At the next start the
records left over are jobs that died with the old process: each user is
told, in the language they asked in, to send the picture again. With
JOB_BACKEND=celery, jobs outlive the bot: those the backend still carries
are handed to the messenger with their records, to be carried on.

Only ids go to Redis, never a picture. The hash is written whole from this
process's own records, so a write lost while Redis was away is made good by
the next one; the old process's records are read (and told about) first.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ReplyParameters
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.chat.watch import JobWatch
from bot.jobs.job import Job
from bot.operator.redis_link import KEY_PREFIX, RedisDown, RedisLink, WriteBehind

log = logging.getLogger(__name__)

LEDGER_KEY = f"{KEY_PREFIX}:jobs"
TELL_TIMEOUT_S = 10.0


def lost_text() -> str:
    return _("😔 Sorry, I was restarted while working on your picture, and the job was lost. "
             "Please send the picture again.")


class JobLedger(JobWatch):
    def __init__(self, link: RedisLink, bot: Bot, i18n: I18n):
        self.link = link
        self.bot = bot
        self.i18n = i18n
        self._records: dict[str, dict] = {}       # this process's jobs in flight
        self._inherited = False                   # the old process's records are dealt with
        self._writing = asyncio.Lock()            # one write at a time, each of the records as they are then
        # Until the old records are dealt with, _catch_up writes instead.
        self._writer = WriteBehind(self._write, ready=lambda: self._inherited)
        link.on_recovery(self._catch_up)

    # -- the messenger's side -------------------------------------------------

    async def accepted(self, delivery) -> None:
        # Stored before the user sees the status message, so no kill can come between the two.
        job = delivery.job
        # Enough to tell the user of a lost job, or (JOB_BACKEND=celery) to carry a surviving one on.
        self._records[job.id] = {"user_id": job.user_id, "chat_id": job.chat_id, "locale": delivery.locale,
                                 "op": job.op, "status_message_id": None, "thread_id": delivery.thread_id,
                                 "as_document": delivery.as_document,
                                 "source": delivery.source.as_data() if delivery.source else None,
                                 "remember": delivery.remember}
        if self._inherited:
            try:
                await self._write()
            except RedisDown:
                pass          # _catch_up writes the whole ledger once Redis is back

    def opened(self, delivery) -> None:
        record = self._records.get(delivery.job.id)
        if record is not None:
            record["status_message_id"] = delivery.status_message_id   # the lost-job message answers it
            self._writer.changed()

    def closed(self, delivery) -> None:
        if self._records.pop(delivery.job.id, None) is not None:
            self._writer.changed()

    # -- start and stop ---------------------------------------------------------

    async def start(self, survivors: list[Job] = (), adopt: Callable[[Job, dict], None] | None = None) -> None:
        """Carry on the jobs the backend still has (`survivors`, handed to `adopt` with their records),
        tell the users whose jobs the last process lost, then keep the ledger."""
        try:
            stored = await self._read(self.link.run)
        except RedisDown:
            stored = None
            log.warning("could not read the job ledger yet; the users of lost jobs hear once Redis is back")
        for job in survivors:
            # At once, Redis or not: the backend hands on their events from now on.
            record = (stored or {}).get(job.id) or {"user_id": job.user_id, "chat_id": job.chat_id, "op": job.op}
            self._records[job.id] = record
            if adopt is not None:
                adopt(job, record)
        if stored is not None:
            await self._tell_lost(stored)
        self._writer.start()

    async def stop(self) -> None:
        """Write the last state (after a clean stop: nothing in flight), then stop writing."""
        self._writer.stop()
        if self._inherited:
            try:
                await self._write()
            except RedisDown:
                log.warning("could not clear the job ledger on the way out")

    # -- Redis -------------------------------------------------------------------

    async def _catch_up(self) -> None:
        if not self._inherited:
            await self._tell_lost(await self._read(self.link.attempt))
        await self._write(now=True)

    async def _read(self, run) -> dict[str, dict]:
        stored = await run(lambda r: r.hgetall(LEDGER_KEY))
        return {key.decode(): json.loads(value) for key, value in stored.items()}

    async def _tell_lost(self, stored: dict[str, dict]) -> None:
        lost = {job_id: record for job_id, record in stored.items() if job_id not in self._records}
        if lost:
            log.warning("%d job(s) were lost when the bot last stopped; telling their users", len(lost))
            try:
                await asyncio.wait_for(asyncio.gather(*(self._tell(r) for r in lost.values())), TELL_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("not every user of a lost job heard in time")
            await self.link.attempt(lambda r: r.hdel(LEDGER_KEY, *lost))
        self._inherited = True

    async def _tell(self, record: dict) -> None:
        with self.i18n.context(), self.i18n.use_locale(record.get("locale") or self.i18n.default_locale):
            text = lost_text()
        reply = None
        if record.get("status_message_id"):
            reply = ReplyParameters(message_id=record["status_message_id"], allow_sending_without_reply=True)
        try:
            await self.bot.send_message(record["chat_id"], text, reply_parameters=reply)
        except TelegramAPIError as e:
            log.info("could not tell user %s about their lost job: %s", record.get("user_id"), e)

    async def _write(self, *, now: bool = False) -> None:
        """The hash, replaced by this process's records; now: even while Redis counts as down."""
        async with self._writing:
            records = {job_id: json.dumps(record) for job_id, record in self._records.items()}

            async def replace(redis):
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.delete(LEDGER_KEY)
                    if records:
                        pipe.hset(LEDGER_KEY, mapping=records)
                    return await pipe.execute()

            await (self.link.attempt if now else self.link.run)(replace)
