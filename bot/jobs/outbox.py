"""Handing a backend's events to the chat side: one job's events in order, jobs side by side.

One task per job delivers its events: a slow upload to one chat holds up
nobody else's progress, and a job's events never overtake each other. A job
the user cancelled is silenced: nothing more of it reaches the handler (an
event already being handled finishes).
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from bot.jobs.job import Job, JobDone, JobFailed

log = logging.getLogger(__name__)


class _Outbox:
    """One job's undelivered events."""

    def __init__(self):
        self.events: deque = deque()
        self.wake = asyncio.Event()
        self.closed = False


class Outboxes:
    def __init__(self, on_event: Callable[[object], Awaitable[None]]):
        self._on_event = on_event
        self._boxes: dict[str, _Outbox] = {}

    def emit(self, event) -> None:
        """Queue an event for delivery; call from the event loop."""
        box = self._boxes.get(event.job.id)
        if box is None:
            box = self._boxes[event.job.id] = _Outbox()
            asyncio.get_running_loop().create_task(self._deliver(event.job.id, box))
        box.events.append(event)
        box.wake.set()

    def silence(self, job: Job) -> None:
        """Nothing more of this job reaches the handler (one already being handled finishes)."""
        box = self._boxes.get(job.id)
        if box is not None:
            box.events.clear()
            box.closed = True
            box.wake.set()

    async def _deliver(self, job_id: str, box: _Outbox) -> None:
        try:
            while True:
                while box.events:
                    event = box.events.popleft()
                    try:
                        await self._on_event(event)
                    except Exception:
                        log.exception("on_event failed for %s", type(event).__name__)
                    if isinstance(event, (JobDone, JobFailed)):
                        return
                if box.closed:
                    return
                box.wake.clear()
                await box.wake.wait()
        finally:
            if self._boxes.get(job_id) is box:
                del self._boxes[job_id]
