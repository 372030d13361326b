"""The local job backend: jobs wait here, worker processes of the bot's own run them, events come back.

Plain asyncio + multiprocessing, no aiogram: the handlers submit `Job`s and
get events through one `on_event` coroutine. Workers are spawned processes
(bot/jobs/worker.py), so torch never loads into the bot process and a crash or an
out-of-memory kill takes down one worker, not the bot.

Each worker has its own task queue (only this process writes to it), its own
result pipe (only the worker writes to it) and its own cancel event
(bot/jobs/process.py).
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections import deque
from typing import Awaitable, Callable

from bot.jobs import worker as worker_main
from bot.jobs.job import (WORKER_DIED, Job, JobDone, JobFailed, JobProgress, JobQueued, JobStarted, QueueFull, UserBusy,
                          check)
from bot.jobs.outbox import Outboxes
from bot.jobs.process import WorkerProcess

log = logging.getLogger(__name__)


class LocalJobQueue:
    """JOB_BACKEND=local: worker processes of the bot's own (bot.jobs.backend.JobBackend)."""

    # How long a cancelled job may keep running before its worker is killed.
    cancel_grace_s = 3.0

    def __init__(self, *, engine_factory: str = "nets.engine:Engine", engine_options: dict,
                 workers: int = 1, max_queue: int = 8, time_limit_s: float = 600,
                 on_event: Callable[[object], Awaitable[None]],
                 on_ready: Callable[[dict], None] | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._factory = engine_factory
        self._engine_options = dict(engine_options)
        self._max_queue = max_queue
        self._time_limit_s = time_limit_s
        self._on_ready = on_ready   # told what each worker's engine is (bot.jobs.worker.describe) when it is ready
        # spawn, not fork: forking a process that runs an event loop and
        # threads copies their locks in whatever state they happen to be.
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[WorkerProcess | None] = [None] * workers
        self._waiting: deque[Job] = deque()
        self._active: dict[int, Job] = {}          # user_id -> their queued or running job
        self._reported: dict[str, int] = {}        # job id -> position last sent
        self._outboxes = Outboxes(on_event)
        self._running: set[WorkerProcess] = set()        # every process not yet reaped, retired ones too
        self._spawn_failures = 0
        self._respawns: dict[int, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- the handlers' side -------------------------------------------------

    async def recover(self) -> list[Job]:
        return []   # the jobs of an earlier run died with its worker processes

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for index in range(len(self._workers)):
            self._spawn(index)

    async def submit(self, job: Job) -> int:
        if self._loop is None or self._stopping:
            raise RuntimeError("the job queue is not running")
        check(job)
        if job.user_id in self._active:
            raise UserBusy(job.user_id)
        worker = self._free_worker()
        if worker is None and len(self._waiting) >= self._max_queue:
            raise QueueFull()
        self._active[job.user_id] = job
        if worker is not None:
            self._emit(JobQueued(job, 0))
            self._assign(worker, job)
            return 0
        self._waiting.append(job)
        position = len(self._waiting)
        self._reported[job.id] = position
        self._emit(JobQueued(job, position))
        return position

    def workers_about(self) -> list[dict]:
        """Device and precision of each worker that is up and ready."""
        return [w.about for w in self._workers if w is not None and w.ready and not w.retired]

    def waiting(self) -> int:
        """How many jobs wait for a worker now."""
        return len(self._waiting)

    def worker_pids(self) -> list[int]:
        """Process ids of the workers alive now, ready or still starting."""
        return [w.process.pid for w in self._workers if w is not None and not w.retired and w.process.is_alive()]

    def limit(self, name: str, default: int) -> int:
        """A device limit (bot/jobs/device_limits.py: max_side, quality_steps, quality_max_side) as the
        workers apply it: the smallest among the ready ones; `default` before any is ready."""
        values = [about[name] for about in self.workers_about() if name in about]
        return min(values) if values else default

    def position(self, job_id: str) -> int | None:
        for number, job in enumerate(self._waiting, start=1):
            if job.id == job_id:
                return number
        if any(w is not None and w.job is not None and w.job.id == job_id for w in self._workers):
            return 0
        return None

    def active_job(self, user_id: int) -> Job | None:
        return self._active.get(user_id)

    async def cancel(self, user_id: int) -> bool:
        job = self._active.pop(user_id, None)
        if job is None:
            return False
        self._silence(job)
        if any(waiting is job for waiting in self._waiting):
            # by identity: Job equality would compare the pictures byte by byte
            self._waiting = deque(waiting for waiting in self._waiting if waiting is not job)
            self._report_positions()
            return True
        worker = next(w for w in self._workers if w is not None and w.job is job)
        # The task stays the worker's until the child answers for it, so the
        # worker takes nothing new while the engine is still winding down.
        worker.job = None
        worker.stop_timer()
        worker.cancel.set()
        if worker.ready:
            self._start_grace(worker)
        # else the grace starts once the engine is built: a slow build is not
        # a worker that ignores cancel.
        return True

    async def stop(self, timeout: float = 5.0) -> list[Job]:
        """Terminate every worker and return the jobs that did not finish.

        No events are sent for those jobs, now or later: the bot tells their
        users itself, while it still can.
        """
        self._stopping = True
        unfinished = [w.job for w in self._workers if w is not None and w.job is not None]
        unfinished += self._waiting
        self._waiting.clear()
        self._active.clear()
        for job in unfinished:
            self._silence(job)
        for handle in self._respawns.values():
            handle.cancel()
        workers = list(self._running)
        self._workers = [None] * len(self._workers)
        for w in workers:
            w.retired = True
            w.discard()
            w.process.terminate()
        deadline = time.monotonic() + timeout
        while any(w.process.is_alive() for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in workers:
            if w.process.is_alive():
                log.warning("worker %d ignored SIGTERM; killing it", w.index)
                w.process.kill()
        # The readers reap the processes; wait for them off the loop.
        for w in workers:
            await self._loop.run_in_executor(None, w.reader.join)
        return unfinished

    # -- workers ------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        if self._stopping:
            return
        w = WorkerProcess(index, self._ctx, self._factory, self._engine_options)
        w.start_reader(lambda message: self._loop.call_soon_threadsafe(self._on_message, w, message))
        self._workers[index] = w
        self._running.add(w)
        log.info("worker %d started (pid %d)", index, w.process.pid)
        self._dispatch()

    def _on_message(self, w: WorkerProcess, message) -> None:
        if message is None:
            self._on_exit(w)
            return
        if w.retired:
            return
        kind = message[0]
        if kind == "ready":
            w.ready = True
            w.about = message[2]
            if self._on_ready is not None:
                self._on_ready(w.about)
            self._spawn_failures = 0
            log.info("worker %d ready: %s", w.index, ", ".join(f"{k} {v}" for k, v in w.about.items()))
            if not message[1]:
                log.error("worker %d could not build its engine; its jobs will fail", w.index)
            if w.task_id is not None and w.job is None:
                self._start_grace(w)
            return
        if message[1] != w.task_id:
            return                  # from a task we already gave up on
        job = w.job
        if kind == "started":
            if job is not None:
                # The clock restarts now, so a slow engine build does not eat
                # into the job's own time.
                self._start_timer(w, job)
                self._emit(JobStarted(job))
        elif kind == "progress":
            if job is not None:
                self._emit(JobProgress(job, message[2], message[3]))
        else:
            self._finish(w, message)

    def _finish(self, w: WorkerProcess, message) -> None:
        job = w.job
        w.task_id = None
        w.job = None
        w.stop_timer()
        # Cleared only once the child has answered for the task it was meant
        # for, so it cannot leak into the next job.
        w.cancel.clear()
        if job is not None:
            del self._active[job.user_id]
            kind = message[0]
            if kind == "done":
                _, _, data, width, height, downsized, seconds = message
                self._emit(JobDone(job, data, width, height, downsized, seconds))
            elif kind == "failed":
                _, _, reason, code, text, error_type = message
                log.warning("job %s (%s) failed: %s %s", job.id, job.op, error_type, code or "")
                self._emit(JobFailed(job, reason, code, text))
            else:   # the engine says cancelled, but nobody here asked it to
                self._emit(JobFailed(job, "error", "cancelled", worker_main.ERROR_MESSAGE))
        self._dispatch()

    def _on_exit(self, w: WorkerProcess) -> None:
        self._running.discard(w)
        if w.retired:
            w.discard()
            return
        w.retired = True
        w.discard()
        log.error("worker %d (pid %d) died with exit code %s", w.index, w.process.pid, w.process.exitcode)
        job, w.job = w.job, None
        if job is not None:
            del self._active[job.user_id]
            self._emit(JobFailed(job, "worker_died", None, WORKER_DIED))
        if w.ready:
            self._spawn_failures = 0
            self._replace(w)
        else:
            # A worker that dies before it is even ready will likely do it
            # again; back off so a broken install does not spin the CPU.
            self._spawn_failures += 1
            delay = min(30.0, 0.5 * 2 ** self._spawn_failures)
            self._workers[w.index] = None
            self._respawns[w.index] = self._loop.call_later(delay, self._spawn, w.index)

    def _replace(self, w: WorkerProcess) -> None:
        """Kill a worker (if it still lives) and put a fresh one in its place."""
        w.retired = True
        w.stop_timer()
        w.process.kill()
        self._spawn(w.index)

    def _timed_out(self, w: WorkerProcess, job_id: str) -> None:
        if w.retired or w.task_id != job_id:
            return
        job = w.job
        log.warning("job %s ran past %s s; replacing worker %d", job_id, self._time_limit_s, w.index)
        w.job = None
        self._replace(w)
        if job is not None:
            del self._active[job.user_id]
            self._emit(JobFailed(job, "timeout", None,
                                 f"Processing took longer than {self._time_limit_s:g} seconds and was stopped."))

    def _start_grace(self, w: WorkerProcess) -> None:
        w.stop_timer()
        w.timer = self._loop.call_later(self.cancel_grace_s, self._cancel_overdue, w, w.task_id)

    def _cancel_overdue(self, w: WorkerProcess, job_id: str) -> None:
        if w.retired or w.task_id != job_id:
            return
        log.warning("worker %d did not stop within %s s of a cancel; replacing it", w.index, self.cancel_grace_s)
        self._replace(w)

    # -- the line -------------------------------------------------------------

    def _free_worker(self) -> WorkerProcess | None:
        return next((w for w in self._workers if w is not None and w.free), None)

    def _assign(self, w: WorkerProcess, job: Job) -> None:
        w.task_id = job.id
        w.job = job
        self._reported.pop(job.id, None)
        # Put returns at once: a feeder thread writes the pictures to the pipe.
        w.tasks.put((job.id, job.op, job.images, job.options, job.output))
        self._start_timer(w, job)

    def _start_timer(self, w: WorkerProcess, job: Job) -> None:
        w.stop_timer()
        w.timer = self._loop.call_later(self._time_limit_s, self._timed_out, w, job.id)

    def _dispatch(self) -> None:
        if self._stopping:
            return
        moved = False
        while self._waiting:
            w = self._free_worker()
            if w is None:
                break
            self._assign(w, self._waiting.popleft())
            moved = True
        if moved:
            self._report_positions()

    def _report_positions(self) -> None:
        for number, job in enumerate(self._waiting, start=1):
            if self._reported.get(job.id) != number:
                self._reported[job.id] = number
                self._emit(JobQueued(job, number))

    # -- events ---------------------------------------------------------------

    def _emit(self, event) -> None:
        self._outboxes.emit(event)

    def _silence(self, job: Job) -> None:
        """Nothing more of this job reaches the handlers (one already being handled finishes)."""
        self._reported.pop(job.id, None)
        self._outboxes.silence(job)
