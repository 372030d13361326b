"""What a job backend offers the chat side: the one interface JobMessenger and /stats use.

`JOB_BACKEND=local` (bot.jobs.local) runs jobs in worker processes of the
bot's own. Every backend keeps one job per user, a bounded queue, the time
limit and cancel, and reports each job through `on_event` (bot.jobs.job's
events, in order per job, through bot.jobs.outbox).
"""
from __future__ import annotations

from typing import Protocol

from bot.jobs.job import Job


class JobBackend(Protocol):
    async def start(self) -> None:
        """Start taking jobs (and the workers this process runs, if any)."""

    def submit(self, job: Job) -> int:
        """Queue the job; returns how many wait ahead of it (0: a worker has it).
        Raises UserBusy (the user has a job already) or QueueFull."""

    def cancel(self, user_id: int) -> bool:
        """Cancel the user's job; True if there was one. Nothing more of it is reported."""

    def active_job(self, user_id: int) -> Job | None:
        """The user's queued or running job."""

    def position(self, job_id: str) -> int | None:
        """0: running, N: N-th in line, None: not known (finished, cancelled, never seen)."""

    async def stop(self, timeout: float = 5.0) -> list[Job]:
        """Stop, and return the unfinished jobs, about which nothing more is reported."""

    def waiting(self) -> int:
        """How many jobs wait for a worker now."""

    def workers_about(self) -> list[dict]:
        """What each ready worker said of itself: device, precision, limits (bot.jobs.worker.describe)."""

    def worker_pids(self) -> list[int]:
        """Process ids of this host's live workers (for /stats' memory line and the health check)."""

    def limit(self, name: str, default: int) -> int:
        """A device limit (max_side, quality_steps, quality_max_side) as the ready workers apply it:
        the smallest among them; `default` before any is ready."""
