"""What a job backend offers the chat side: the one interface JobMessenger and /stats use.

`JOB_BACKEND=local` (bot.jobs.local) runs jobs in worker processes of the
bot's own; `JOB_BACKEND=celery` (bot.jobs.celery_queue) sends them through
Redis to worker hosts anywhere. Every backend keeps one job per user, a bounded queue, the time
limit and cancel, and reports each job through `on_event` (bot.jobs.job's
events, in order per job, through bot.jobs.outbox).
"""
from __future__ import annotations

from typing import Protocol

from bot.jobs.job import Job


class JobBackend(Protocol):
    async def recover(self) -> list[Job]:
        """Before start: the jobs an earlier run of the bot left going, which this one carries on
        (the chat side rebuilds their status messages; bot.operator.ledger tells the others' users)."""

    async def start(self) -> None:
        """Start taking jobs (and the workers this process runs, if any)."""

    async def submit(self, job: Job) -> int:
        """Queue the job; returns its place as the user hears it (0: a worker takes it now).
        Raises UserBusy (the user has a job already), QueueFull, or BackendUnavailable."""

    async def cancel(self, user_id: int) -> bool:
        """Cancel the user's job; True if there was one. Nothing more of it is reported."""

    def active_job(self, user_id: int) -> Job | None:
        """The user's queued or running job."""

    def position(self, job_id: str) -> int | None:
        """0: running, N: N-th in line, None: not known (finished, cancelled, never seen)."""

    async def stop(self, timeout: float = 5.0) -> list[Job]:
        """Stop, and return the jobs dropped unfinished (their users are told); nothing more of them is
        reported. A backend whose jobs outlive the bot drops none."""

    def waiting(self) -> int:
        """How many jobs wait for a worker now."""

    def workers_about(self) -> list[dict]:
        """What each ready worker said of itself: device, precision, limits (bot.jobs.worker.describe)."""

    def worker_pids(self) -> list[int]:
        """Process ids of this host's live workers (for /stats' memory line and the health check)."""

    def limit(self, name: str, default: int) -> int:
        """A device limit (max_side, quality_steps, quality_max_side) as the ready workers apply it:
        the smallest among them; `default` before any is ready."""
