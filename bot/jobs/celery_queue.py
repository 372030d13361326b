"""The Celery job backend (JOB_BACKEND=celery): jobs go through Redis to workers on any host.

The bot keeps what its users see: one job per user, the line of jobs not yet
started (in the order Celery hands them out: jobs sent again after a lost
worker first, then the rest as they came), positions, MAX_QUEUE and cancel.
A job's pictures and options go into the job store (bot/jobs/store.py) and
its message into Celery's queue; whatever worker takes it reports through
the store's event stream, which this process reads with a consumer group, so
events that came while the bot was down (a restart, a crash) are read once it
is back. A job's keys go once its end has been handed on.

Every few seconds a watch looks at the running jobs' leases: a job whose
worker went silent (its process killed, its host gone or cut off) is sent
again once, ahead of new jobs, and given up with the usual apology after a
second loss. The same watch reads the worker registry that /stats shows, and
ends a job that ran far past its time limit.

With JOB_WORKERS > 0 the bot also starts a worker host of its own
(`python -m bot worker` as a child process), so a lone playground works as
before; JOB_WORKERS=0 makes it a pure front end.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from bot.jobs import store
from bot.jobs.celery_app import NEW_JOB_PRIORITY, QUEUE, RETRY_PRIORITY, SEND_TIMEOUT_S, TASK, make_app
from bot.jobs.job import (WORKER_DIED, BackendUnavailable, Job, JobDone, JobFailed, JobProgress, JobQueued, JobStarted,
                          QueueFull, UserBusy, check)
from bot.jobs.outbox import Outboxes
from bot.jobs.process import children_of
from bot.jobs.redis_tls import redis_py_options
from bot.settings import Settings

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 1.0    # what a user's update may wait for Redis
WATCH_INTERVAL_S = 2.0
READ_BLOCK_MS = 1000
OVERDUE_GRACE_S = 30.0     # past its time limit by this much, a job whose worker did not stop it is ended here
CONSUMER = "bot"           # one bot per token, so one consumer


@dataclass
class _Tracked:
    job: Job
    attempt: int = 1
    running: bool = False
    started_at: float | None = None   # monotonic, while running
    retry: bool = False               # sent again after a lost worker: ahead of new jobs
    finished: bool = False            # done or failed before this start; its end is still to be handed on


class CeleryJobQueue:
    """JOB_BACKEND=celery (bot.jobs.backend.JobBackend)."""

    def __init__(self, settings: Settings, *, on_event: Callable[[object], Awaitable[None]],
                 on_ready: Callable[[dict], None] | None = None):
        self._settings = settings
        self._max_queue = settings.max_queue
        self._time_limit_s = settings.job_time_limit_s
        # Pictures wait in Redis as long as a full queue could take, and an hour at least.
        self._input_ttl_s = int(max(3600, (settings.max_queue + 2) * settings.job_time_limit_s))
        self._on_event = on_event
        self._on_ready = on_ready
        self._app = make_app(settings.redis_url, settings.redis_ca_file)
        tls = redis_py_options(settings.redis_url, settings.redis_ca_file)
        # No retries inside redis-py: one short timeout is all a user's update may wait.
        self._redis = Redis.from_url(settings.redis_url, socket_timeout=COMMAND_TIMEOUT_S,
                                     socket_connect_timeout=COMMAND_TIMEOUT_S, retry=Retry(NoBackoff(), 0), **tls)
        # The stream is read with a blocking call, which needs a longer socket timeout than its block.
        self._reader = Redis.from_url(settings.redis_url, socket_timeout=READ_BLOCK_MS / 1000 + 4,
                                      socket_connect_timeout=COMMAND_TIMEOUT_S * 3, **tls)
        self._requeue = self._redis.register_script(store.REQUEUE)
        self._finish = self._redis.register_script(store.FINISH)
        self._outboxes = Outboxes(self._hand_on)
        self._jobs: dict[str, _Tracked] = {}
        self._active: dict[int, str] = {}          # user_id -> their job's id
        self._reported: dict[str, int] = {}        # job id -> position last sent
        self._ending: dict[str, str] = {}          # job id -> the stream entry of its end, acknowledged once handed on
        self._workers: list[dict] = []             # the registry, as last read
        self._seen_workers: set[tuple] = set()
        self._tasks: list[asyncio.Task] = []
        self._own_workers: asyncio.subprocess.Process | None = None
        self._down_since: float | None = None

    # -- the handlers' side -------------------------------------------------

    async def recover(self) -> list[Job]:
        """The jobs an earlier run of the bot left going: tracked again, so their events reach their users."""
        try:
            job_keys = [key async for key in self._redis.scan_iter(match=store.PREFIX + "job:*", count=500)]
            found = []
            for key in job_keys:
                fields = {store.text(k): store.text(v) for k, v in (await self._redis.hgetall(key)).items()}
                if fields.get("status") in ("queued", "running", "done", "failed"):
                    found.append((store.text(key).rpartition(":")[2], fields))
        except (RedisError, OSError) as e:
            log.warning("could not read the jobs in flight from Redis (%s); their results wait there", e)
            return []
        found.sort(key=lambda item: float(item[1].get("submitted") or 0))
        for job_id, fields in found:
            job = Job(user_id=int(fields["user_id"]), chat_id=int(fields["chat_id"]), op=fields["op"], images={},
                      options={}, output=fields.get("output") or "jpeg", id=job_id)
            tracked = _Tracked(job, attempt=int(fields.get("attempt") or 1), running=fields["status"] == "running",
                               retry=int(fields.get("runs") or 0) > 0,
                               finished=fields["status"] in ("done", "failed"))
            if tracked.running:
                tracked.started_at = time.monotonic() - max(0.0, time.time() - float(fields.get("started") or 0))
            self._jobs[job_id] = tracked
            self._active[job.user_id] = job_id
        if found:
            log.info("%d job(s) from before this start are still in flight", len(found))
        return [t.job for t in self._jobs.values()]

    async def start(self) -> None:
        try:
            await self._redis.xgroup_create(store.EVENTS, store.EVENTS_GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        except (RedisError, OSError) as e:
            log.warning("Redis is not answering yet (%s); jobs are taken once it is", e)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_events()), loop.create_task(self._watch())]
        self._report_positions()
        if self._settings.job_workers:
            await self._start_own_workers()

    async def submit(self, job: Job) -> int:
        check(job)
        if job.user_id in self._active:
            raise UserBusy(job.user_id)
        waiting = self._waiting()
        if len(waiting) >= self._max_queue + self._idle_workers():
            raise QueueFull()
        fields = {"user_id": job.user_id, "chat_id": job.chat_id, "op": job.op, "options": json.dumps(job.options),
                  "output": job.output, "time_limit": self._time_limit_s, "submitted": time.time(),
                  "status": "queued", "attempt": 1, "runs": 0}
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S * 2):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hset(store.job_key(job.id), mapping=fields)
                    pipe.expire(store.job_key(job.id), store.JOB_TTL_S)
                    pipe.hset(store.in_key(job.id), mapping=store.pictures_to_fields(job.images))
                    pipe.expire(store.in_key(job.id), self._input_ttl_s)
                    await pipe.execute()
            await self._send(job.id, 1, NEW_JOB_PRIORITY)
        except (RedisError, OSError, TimeoutError) as e:
            self._went_down(e)
            await self._forget_keys(job.id)
            raise BackendUnavailable(str(e)) from e
        self._back_up()
        job.images = {}    # in Redis now; the bot need not hold them too
        self._jobs[job.id] = _Tracked(job)
        self._active[job.user_id] = job.id
        position = self._position(len(waiting) + 1)
        self._reported[job.id] = position
        self._outboxes.emit(JobQueued(job, position))
        return position

    async def cancel(self, user_id: int) -> bool:
        job_id = self._active.pop(user_id, None)
        if job_id is None:
            return False
        tracked = self._jobs.pop(job_id)
        self._reported.pop(job_id, None)
        self._outboxes.silence(tracked.job)
        try:
            if tracked.running:
                # The worker sees it within a second, stops and deletes the job's keys (store.FINISH).
                await self._redis.hset(store.job_key(job_id), "status", "cancelled")
            else:
                # Its message may still come: with the job gone, a worker drops it unrun.
                await self._redis.delete(store.job_key(job_id), store.in_key(job_id))
        except (RedisError, OSError) as e:
            # The keys expire on their own; a result that still comes is dropped here (_on_entry).
            log.warning("job %s: could not tell Redis it was cancelled (%s)", job_id, e)
        self._report_positions()
        return True

    def active_job(self, user_id: int) -> Job | None:
        job_id = self._active.get(user_id)
        return self._jobs[job_id].job if job_id is not None else None

    def position(self, job_id: str) -> int | None:
        tracked = self._jobs.get(job_id)
        if tracked is None:
            return None
        if tracked.running or tracked.finished:
            return 0
        return self._position(self._waiting().index(tracked) + 1)

    def waiting(self) -> int:
        return len(self._waiting())

    def workers_about(self) -> list[dict]:
        return [w for w in self._workers if w.get("ready")]

    def worker_pids(self) -> list[int]:
        """This host's own worker processes: the bot's worker host and its pool."""
        if self._own_workers is None or self._own_workers.returncode is not None:
            return []
        return [self._own_workers.pid, *children_of(self._own_workers.pid)]

    def limit(self, name: str, default: int) -> int:
        values = [about[name] for about in self.workers_about() if name in about]
        return min(values) if values else default

    async def stop(self, timeout: float = 5.0) -> list[Job]:
        """Stop reading and watching. Nothing is dropped: the jobs go on in Redis and on the workers,
        and the next start picks up their events (a job on the bot's own worker host runs again)."""
        for task in self._tasks:
            task.cancel()
        # A result being handed on right now clears its keys once sent: let it, or the next start sends it again.
        end = time.monotonic() + timeout / 2
        while self._ending and time.monotonic() < end:
            await asyncio.sleep(0.05)
        await self._stop_own_workers(timeout / 2)
        for client in (self._redis, self._reader):
            try:
                await client.aclose()
            except (RedisError, OSError):
                pass
        return []

    # -- sending ------------------------------------------------------------------

    async def _send(self, job_id: str, attempt: int, priority: int) -> None:
        def send():
            self._app.send_task(TASK, args=[job_id, attempt], queue=QUEUE, priority=priority, retry=False)
        await asyncio.wait_for(asyncio.to_thread(send), SEND_TIMEOUT_S * 2)

    async def _forget_keys(self, job_id: str) -> None:
        try:
            await self._redis.delete(*store.keys(job_id))
        except (RedisError, OSError):
            pass   # they expire on their own

    # -- events -----------------------------------------------------------------

    async def _read_events(self) -> None:
        cursor = "0"     # first what was read before but never acknowledged (the bot went down), then new
        while True:
            try:
                reply = await self._reader.xreadgroup(store.EVENTS_GROUP, CONSUMER, {store.EVENTS: cursor},
                                                      count=100, block=READ_BLOCK_MS)
            except ResponseError as e:
                if "NOGROUP" in str(e):
                    await self._create_group()
                    continue
                raise
            except (RedisError, OSError, TimeoutError) as e:
                self._went_down(e)
                await asyncio.sleep(1.0)
                continue
            self._back_up()
            entries = reply[0][1] if reply else []
            if cursor == "0" and not entries:
                cursor = ">"
            for entry_id, fields in entries:
                try:
                    await self._on_entry(store.text(entry_id), {store.text(k): store.text(v)
                                                                for k, v in fields.items()})
                except (RedisError, OSError) as e:
                    self._went_down(e)     # read again from the pending entries once Redis answers
                    cursor = "0"
                    break

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(store.EVENTS, store.EVENTS_GROUP, id="0", mkstream=True)
        except ResponseError:
            pass

    async def _on_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        job_id, kind = fields.get("job", ""), fields.get("kind", "")
        tracked = self._jobs.get(job_id)
        if tracked is None:
            # Cancelled, or from a job nobody waits for any more: nothing of it may stay.
            if kind in ("done", "failed"):
                await self._redis.delete(*store.keys(job_id))
            await self._acknowledge(entry_id)
            return
        job = tracked.job
        if kind == "started":
            tracked.running, tracked.started_at, tracked.retry = True, time.monotonic(), False
            self._reported.pop(job_id, None)
            self._outboxes.emit(JobStarted(job))
            self._report_positions()
        elif kind == "progress":
            self._outboxes.emit(JobProgress(job, int(fields["done"]), int(fields["total"])))
        elif kind == "done":
            data = await self._redis.get(store.out_key(job_id))
            self._end(job_id, entry_id)
            if data is None:
                self._outboxes.emit(JobFailed(job, "error", None, "The finished picture was lost in Redis."))
            else:
                self._outboxes.emit(JobDone(job, data, int(fields["width"]), int(fields["height"]),
                                            fields.get("downsized") == "1", float(fields["seconds"])))
            return          # acknowledged once handed on (_hand_on)
        elif kind == "failed":
            self._end(job_id, entry_id)
            reason = fields.get("reason") or "error"
            message = fields.get("message") or (WORKER_DIED if reason == "worker_died" else "")
            self._outboxes.emit(JobFailed(job, reason, fields.get("code") or None, message))
            return
        await self._acknowledge(entry_id)

    def _end(self, job_id: str, entry_id: str) -> None:
        tracked = self._jobs.pop(job_id)
        if self._active.get(tracked.job.user_id) == job_id:
            del self._active[tracked.job.user_id]
        self._reported.pop(job_id, None)
        self._ending[job_id] = entry_id
        self._report_positions()

    async def _hand_on(self, event) -> None:
        """The outbox's handler: the event to the chat side; a job's end then clears its keys."""
        try:
            await self._on_event(event)
        finally:
            entry_id = self._ending.pop(event.job.id, None) if isinstance(event, (JobDone, JobFailed)) else None
            if entry_id is not None:
                try:
                    await self._redis.delete(*store.keys(event.job.id))
                    await self._acknowledge(entry_id)
                except (RedisError, OSError) as e:
                    log.warning("job %s: its keys stay until they expire (%s)", event.job.id, e)

    async def _acknowledge(self, entry_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(store.EVENTS, store.EVENTS_GROUP, entry_id)
            pipe.xdel(store.EVENTS, entry_id)
            await pipe.execute()

    # -- the line -------------------------------------------------------------------

    def _waiting(self) -> list[_Tracked]:
        """Jobs not started yet, in the order workers take them: retries first."""
        queued = [t for t in self._jobs.values() if not t.running and not t.finished]
        return [t for t in queued if t.retry] + [t for t in queued if not t.retry]

    def _idle_workers(self) -> int:
        return sum(1 for w in self._workers if w.get("ready") and not w.get("busy"))

    def _position(self, place: int) -> int:
        """A place in line as the user hears it: 0 when an idle worker will take it now."""
        return max(0, place - self._idle_workers())

    def _report_positions(self) -> None:
        for place, tracked in enumerate(self._waiting(), start=1):
            position = self._position(place)
            if self._reported.get(tracked.job.id) != position:
                self._reported[tracked.job.id] = position
                self._outboxes.emit(JobQueued(tracked.job, position))

    # -- the watch ------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            try:
                await self._read_registry()
                await self._check_running()
            except (RedisError, OSError, TimeoutError) as e:
                self._went_down(e)
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _read_registry(self) -> None:
        # Entries whose worker stopped saying it is there expire; their names go from the index too.
        await self._redis.zremrangebyscore(store.WORKERS, "-inf", time.time() - store.WORKER_TTL_S)
        keys = await self._redis.zrange(store.WORKERS, 0, -1)
        values = await self._redis.mget(keys) if keys else []
        workers = []
        for value in values:
            try:
                about = json.loads(value)
            except (TypeError, ValueError):
                continue
            if isinstance(about, dict):
                workers.append(about)
        self._workers = sorted(workers, key=lambda w: (str(w.get("name")), int(w.get("index", 0))))
        for about in self.workers_about():
            identity = (about.get("name"), about.get("index"), about.get("pid"))
            if identity not in self._seen_workers:
                self._seen_workers.add(identity)
                log.info("worker %s/%s ready: %s, %s", about.get("name"), about.get("index"), about.get("device"),
                         about.get("precision"))
                if self._on_ready is not None:
                    self._on_ready(about)
        self._report_positions()

    async def _check_running(self) -> None:
        running = [t for t in self._jobs.values() if t.running]
        if not running:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for tracked in running:
                pipe.exists(store.lease_key(tracked.job.id))
            alive = await pipe.execute()
        now = time.monotonic()
        for tracked, has_lease in zip(running, alive):
            if tracked.job.id not in self._jobs:
                continue     # cancelled meanwhile
            if not has_lease:
                await self._worker_lost(tracked)
            elif tracked.started_at is not None and now - tracked.started_at > self._time_limit_s + OVERDUE_GRACE_S:
                log.warning("job %s ran past %s s and its worker did not stop it", tracked.job.id, self._time_limit_s)
                await self._fail(tracked, "timeout",
                                 f"Processing took longer than {self._time_limit_s:g} seconds and was stopped.")

    async def _worker_lost(self, tracked: _Tracked) -> None:
        job_id = tracked.job.id
        outcome, attempt = await self._requeue(keys=[store.job_key(job_id), store.lease_key(job_id)],
                                               args=[tracked.attempt, store.MAX_RUNS])
        outcome = store.text(outcome)
        if outcome == "again":
            log.warning("job %s: its worker went silent; sending it again", job_id)
            tracked.attempt, tracked.running, tracked.started_at, tracked.retry = int(attempt), False, None, True
            await self._send(job_id, tracked.attempt, RETRY_PRIORITY)
            self._report_positions()
        elif outcome == "give_up":
            log.warning("job %s: its worker went silent again; giving up", job_id)
            await self._fail(tracked, "worker_died", WORKER_DIED)

    async def _fail(self, tracked: _Tracked, reason: str, message: str) -> None:
        """End a job from here: the failure goes through the stream like a worker's would."""
        job_id = tracked.job.id
        await self._finish(keys=[store.job_key(job_id), store.lease_key(job_id), store.in_key(job_id),
                                 store.out_key(job_id), store.EVENTS],
                           args=[job_id, tracked.attempt, "failed", "", store.RESULT_TTL_S, store.EVENTS_MAXLEN,
                                 "reason", reason, "code", "", "message", message])

    # -- Redis up and down ----------------------------------------------------------

    def _went_down(self, error: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("the job queue cannot reach Redis (%s: %s); new jobs are refused until it is back",
                        type(error).__name__, error or "timed out")

    def _back_up(self) -> None:
        if self._down_since is not None:
            log.info("Redis is back after %.0f s; the job queue goes on", time.monotonic() - self._down_since)
            self._down_since = None

    # -- the bot's own worker host ----------------------------------------------------

    async def _start_own_workers(self) -> None:
        env = {**os.environ, "JOB_WORKERS": str(self._settings.job_workers),
               "WORKER_NAME": self._settings.worker_name,
               # its own heartbeat beside the bot's, for the bot's health check to leave alone
               "HEARTBEAT_FILE": f"{self._settings.heartbeat_file}.worker"}
        self._own_workers = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "worker", env=env,
                                                                 stdin=asyncio.subprocess.DEVNULL)
        log.info("started a worker host of the bot's own: %d process(es), pid %d", self._settings.job_workers,
                 self._own_workers.pid)

    async def _stop_own_workers(self, timeout: float) -> None:
        worker = self._own_workers
        if worker is None or worker.returncode is not None:
            return
        # A cold stop: what it runs is sent again after the restart (the lease stops), not waited for.
        worker.send_signal(signal.SIGQUIT)
        try:
            await asyncio.wait_for(worker.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("the bot's worker host did not stop within %s s; killing it", timeout)
            worker.kill()
            await worker.wait()
