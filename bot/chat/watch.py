"""What JobMessenger tells about the jobs it takes on, for the operator's side of the bot.

The job ledger (bot.operator.ledger), the counters behind /stats (bot.operator.stats) and the
hourly limit (bot.operator.access) each watch the messenger's jobs through these few
calls; the base class does nothing, so the messenger works without them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiogram.types import Message

    from bot.chat.status import Delivery
    from bot.jobs.job import Job


class JobWatch:
    async def admit(self, message: Message, job: Job) -> bool:
        """May this job go to the queue? False: the watcher has told the user why not."""
        return True

    def refused(self, job: Job, why: str) -> None:
        """The queue turned the job away: why is busy (the user's own job) or full."""

    async def accepted(self, delivery: Delivery) -> None:
        """The queue took the job; its status message is posted next (the ledger waits for Redis here)."""

    def opened(self, delivery: Delivery) -> None:
        """The job's status message is posted."""

    def event(self, event) -> None:
        """Every event the queue sends about one of the messenger's jobs (bot.jobs.job.Job*)."""

    def cancelled(self, job: Job) -> None:
        """The user cancelled the job and nothing more of it will arrive."""

    def closed(self, delivery: Delivery) -> None:
        """Nothing more goes out about this job, whatever its end."""


class Watchers(JobWatch):
    """Several watchers as one, asked in order."""

    def __init__(self, *watchers: JobWatch):
        self.watchers = watchers

    async def admit(self, message, job) -> bool:
        for watcher in self.watchers:
            if not await watcher.admit(message, job):
                return False
        return True

    def refused(self, job, why) -> None:
        for watcher in self.watchers:
            watcher.refused(job, why)

    async def accepted(self, delivery) -> None:
        for watcher in self.watchers:
            await watcher.accepted(delivery)

    def opened(self, delivery) -> None:
        for watcher in self.watchers:
            watcher.opened(delivery)

    def event(self, event) -> None:
        for watcher in self.watchers:
            watcher.event(event)

    def cancelled(self, job) -> None:
        for watcher in self.watchers:
            watcher.cancelled(job)

    def closed(self, delivery) -> None:
        for watcher in self.watchers:
            watcher.closed(delivery)
