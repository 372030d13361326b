"""The job queue: jobs wait here, worker processes run them, events come back.

Plain asyncio + multiprocessing, no aiogram: the handlers submit `Job`s and
get events through one `on_event` coroutine. Workers are spawned processes
(bot/worker.py), so torch never loads into the bot process and a crash or an
out-of-memory kill takes down one worker, not the bot.

Each worker has its own task queue (only this process writes to it), its own
result pipe (only the worker writes to it) and its own cancel event. A thread
per worker blocks on the pipe and hands messages to the event loop; the pipe's
end-of-file is how a dead worker is noticed, at once and whatever killed it.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from uuid import uuid4

from bot import worker as worker_main

log = logging.getLogger(__name__)

OPS = ("stylize", "stylize_quality", "translate", "upscale", "preview_sheet")
OUTPUTS = ("jpeg", "png")


@dataclass
class Job:
    user_id: int
    chat_id: int
    op: str                    # an Engine method: stylize, stylize_quality, translate, upscale, preview_sheet
    images: dict[str, bytes | list[bytes]]   # the method's picture arguments by name: content+style, image,
                                             # or content+styles (a list)
    options: dict              # the method's keyword arguments (strength, direction, scale, ...)
    output: str = "jpeg"       # how the worker encodes the result: jpeg or png
    id: str = field(default_factory=lambda: uuid4().hex)


@dataclass
class JobQueued:
    job: Job
    position: int              # 0: a worker has it; N: N-th in line (1 = next to start)


@dataclass
class JobStarted:
    job: Job


@dataclass
class JobProgress:
    job: Job
    done: int
    total: int


@dataclass
class JobDone:
    job: Job
    data: bytes                # the picture, encoded as job.output
    width: int
    height: int
    downsized: bool
    seconds: float


@dataclass
class JobFailed:
    job: Job
    reason: str                # error, input, worker_died, timeout; and shutdown, which the queue
                               # never sends: the bot builds it for the jobs stop() hands back
    code: str | None           # a nets error code (for input always set), else None
    message: str               # English, fit to show a person; no traceback


class QueueFull(Exception):
    """Every worker is busy and max_queue jobs are already waiting."""


class UserBusy(Exception):
    """The user already has a job waiting or running."""


WORKER_DIED = "The worker processing the picture stopped unexpectedly (it may have run out of memory)."


class _Worker:
    """The parent's view of one worker process."""

    def __init__(self, index: int, ctx, engine_factory: str, engine_options: dict):
        self.index = index
        self.tasks = ctx.Queue()
        self.cancel = ctx.Event()
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=worker_main.main, name=f"stylebot-worker-{index}", daemon=True,
            args=(index, self.tasks, child_conn, self.cancel, engine_factory, engine_options))
        self.process.start()
        # Our copy of the child's end must go, or the pipe never reads as
        # closed when the child dies.
        child_conn.close()
        self.ready = False
        self.about: dict = {}       # the engine's device and precision, once ready
        self.retired = False        # killed or dead: whatever it still says is ignored
        self.task_id: str | None = None   # the task the child is on; None = free
        self.job: Job | None = None       # that task's job, unless it was cancelled
        self.timer: asyncio.TimerHandle | None = None
        self.reader: threading.Thread | None = None
        self._discarded = False

    @property
    def free(self) -> bool:
        return not self.retired and self.task_id is None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def discard(self) -> None:
        """Let go of the task queue without waiting to flush it to a dead child."""
        self.stop_timer()
        if not self._discarded:
            self._discarded = True
            self.tasks.cancel_join_thread()
            self.tasks.close()


class _Outbox:
    """One job's undelivered events; delivered in order by one task."""

    def __init__(self):
        self.events: deque = deque()
        self.wake = asyncio.Event()
        self.closed = False


class JobQueue:
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
        self._on_event = on_event
        self._on_ready = on_ready   # told what each worker's engine is (bot.worker.describe) when it is ready
        # spawn, not fork: forking a process that runs an event loop and
        # threads copies their locks in whatever state they happen to be.
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * workers
        self._waiting: deque[Job] = deque()
        self._active: dict[int, Job] = {}          # user_id -> their queued or running job
        self._reported: dict[str, int] = {}        # job id -> position last sent
        self._outboxes: dict[str, _Outbox] = {}
        self._running: set[_Worker] = set()        # every process not yet reaped, retired ones too
        self._spawn_failures = 0
        self._respawns: dict[int, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- the handlers' side -------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for index in range(len(self._workers)):
            self._spawn(index)

    def submit(self, job: Job) -> int:
        if self._loop is None or self._stopping:
            raise RuntimeError("the job queue is not running")
        if job.op not in OPS:
            raise ValueError(f"unknown op {job.op!r}")
        if job.output not in OUTPUTS:
            raise ValueError(f"unknown output {job.output!r}")
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
        """A device limit (bot/device_limits.py: max_side, quality_steps, quality_max_side) as the
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

    def cancel(self, user_id: int) -> bool:
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
        w = _Worker(index, self._ctx, self._factory, self._engine_options)
        w.reader = threading.Thread(target=self._read, args=(w,), name=f"{w.process.name}-reader", daemon=True)
        w.reader.start()
        self._workers[index] = w
        self._running.add(w)
        log.info("worker %d started (pid %d)", index, w.process.pid)
        self._dispatch()

    def _read(self, w: _Worker) -> None:
        """Runs in a thread: pass every message to the loop, then the end."""
        while True:
            try:
                message = w.conn.recv()
            except (EOFError, OSError):
                break
            if not self._post(w, message):
                break
        w.conn.close()
        # The pipe closes when the child exits; reap it so it leaves no zombie.
        w.process.join()
        self._post(w, None)

    def _post(self, w: _Worker, message) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._on_message, w, message)
            return True
        except RuntimeError:    # the loop is closed: nobody is listening any more
            return False

    def _on_message(self, w: _Worker, message) -> None:
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

    def _finish(self, w: _Worker, message) -> None:
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

    def _on_exit(self, w: _Worker) -> None:
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

    def _replace(self, w: _Worker) -> None:
        """Kill a worker (if it still lives) and put a fresh one in its place."""
        w.retired = True
        w.stop_timer()
        w.process.kill()
        self._spawn(w.index)

    def _timed_out(self, w: _Worker, job_id: str) -> None:
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

    def _start_grace(self, w: _Worker) -> None:
        w.stop_timer()
        w.timer = self._loop.call_later(self.cancel_grace_s, self._cancel_overdue, w, w.task_id)

    def _cancel_overdue(self, w: _Worker, job_id: str) -> None:
        if w.retired or w.task_id != job_id:
            return
        log.warning("worker %d did not stop within %s s of a cancel; replacing it", w.index, self.cancel_grace_s)
        self._replace(w)

    # -- the line -------------------------------------------------------------

    def _free_worker(self) -> _Worker | None:
        return next((w for w in self._workers if w is not None and w.free), None)

    def _assign(self, w: _Worker, job: Job) -> None:
        w.task_id = job.id
        w.job = job
        self._reported.pop(job.id, None)
        # Put returns at once: a feeder thread writes the pictures to the pipe.
        w.tasks.put((job.id, job.op, job.images, job.options, job.output))
        self._start_timer(w, job)

    def _start_timer(self, w: _Worker, job: Job) -> None:
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
        box = self._outboxes.get(event.job.id)
        if box is None:
            box = self._outboxes[event.job.id] = _Outbox()
            self._loop.create_task(self._deliver(event.job.id, box))
        box.events.append(event)
        box.wake.set()

    def _silence(self, job: Job) -> None:
        """Nothing more of this job reaches the handlers (one already being handled finishes)."""
        self._reported.pop(job.id, None)
        box = self._outboxes.get(job.id)
        if box is not None:
            box.events.clear()
            box.closed = True
            box.wake.set()

    async def _deliver(self, job_id: str, box: _Outbox) -> None:
        # One task per job: events of one job stay in order, while a slow
        # upload to one chat does not hold up everybody else's progress.
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
            if self._outboxes.get(job_id) is box:
                del self._outboxes[job_id]
