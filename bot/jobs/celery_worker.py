"""A worker host: `python -m bot worker`, a Celery worker whose processes each keep one Engine.

It needs no bot token: REDIS_URL, WEIGHTS_DIR, DEVICE, JOB_WORKERS and
WORKER_NAME, and its own MAX_SIDE, QUALITY_* and GPU_* limits, which decide
what jobs become on this host (a GPU box paints larger than a playground).

Celery's prefork pool runs JOB_WORKERS processes (on a GPU host, one per GPU
unless set). Each builds its Engine once, in `worker_process_init`, so the
parent never touches torch or CUDA before forking, and keeps its models
between jobs. A job runs in three steps against the job store
(bot/jobs/store.py): claim it (only the message for the job's current
attempt, and only while it is queued), run it while a thread renews its
lease each second and watches for a cancel or the time limit, then finish
it (only if it is still this run's). What a job says goes to the events
stream; its pictures never travel in the task message.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import socket
import sys
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from bot.jobs import store
from bot.jobs.celery_app import QUEUE, TASK, WORKER_FLAGS, make_app
from bot.jobs.device_limits import apply as apply_limits
from bot.jobs.process import rss_mb
from bot.jobs.redis_tls import redis_py_options, safe_url
from bot.jobs.worker import (build, describe, engine_options, failure, limits_for, prepare_process, release_gpu_memory,
                             run_job, throttled)
from bot.settings import Settings
from nets.gpu import visible_gpu_count

log = logging.getLogger(__name__)

RENEW_INTERVAL_S = 1.0
REGISTRY_INTERVAL_S = 5.0
PROGRESS_INTERVAL_S = 1.0    # the bot edits a status message every few seconds at most anyway
FINISH_PATIENCE_S = 60.0     # how long a finished job waits for Redis to come back before it is given up
HARD_LIMIT_MARGIN_S = 60     # Celery kills a process stuck this long past the job's own time limit
ENGINE_FACTORY = "nets.engine:Engine"


def processes_for(settings: Settings) -> int:
    """JOB_WORKERS, else one per GPU this host shows (no CUDA call: the parent must not touch CUDA), else one."""
    if settings.job_workers:
        return settings.job_workers
    if settings.device.startswith("cuda") or settings.device == "auto":
        return max(1, visible_gpu_count())
    return 1


class Lease(threading.Thread):
    """Renews a running job's lease every second; sets `cancel` when the job is no longer ours to run:
    cancelled, failed by the bot, sent again elsewhere, gone, or past its time limit."""

    def __init__(self, redis: Redis, job_id: str, attempt: int, holder: str, time_limit_s: float, cancel):
        super().__init__(name=f"lease-{job_id[:8]}", daemon=True)
        self.redis, self.job_id, self.attempt, self.holder = redis, job_id, attempt, holder
        self.deadline = time.monotonic() + time_limit_s
        self.cancel = cancel
        self.timed_out = False
        self.why = ""
        self._renew = redis.register_script(store.RENEW)
        self._stop = threading.Event()

    def run(self) -> None:
        told = False
        while not self._stop.wait(RENEW_INTERVAL_S):
            if time.monotonic() > self.deadline:
                self.timed_out = True
                self._give_up("its time limit passed")
                return
            try:
                status = store.text(self._renew(keys=[store.job_key(self.job_id), store.lease_key(self.job_id)],
                                                args=[self.attempt, self.holder, int(store.LEASE_S * 1000)]))
            except (RedisError, OSError) as e:
                # Keep working: the result is offered once Redis is back, and taken if nobody else took the job.
                if not told:
                    log.warning("job %s: cannot renew its lease (%s); working on", self.job_id, e)
                    told = True
                continue
            told = False
            if status != "running":
                self._give_up(f"it is {status} now")
                return

    def _give_up(self, why: str) -> None:
        self.why = why
        log.info("job %s: stopping, %s", self.job_id, why)
        self.cancel.set()

    def stop(self) -> None:
        self._stop.set()


class WorkerProcess:
    """One pool process: its Engine, its Redis client, its entry in the registry."""

    def __init__(self, settings: Settings, processes: int, index: int, engine_factory: str = ENGINE_FACTORY):
        self.name = settings.worker_name
        self.index = index
        self.holder = f"{self.name}:{index}"
        self.redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                    **redis_py_options(settings.redis_url, settings.redis_ca_file))
        self._claim = self.redis.register_script(store.CLAIM)
        self._finish = self.redis.register_script(store.FINISH)
        self.engine_factory = engine_factory
        self.engine_options, self.limits_by_device = prepare_process(index, engine_options(settings, processes))
        self.engine, self.build_error = build(engine_factory, self.engine_options)
        self.limits = limits_for(self.engine, self.limits_by_device)
        self.jobs_done = 0
        self.busy: str | None = None
        self.since = time.time()
        threading.Thread(target=self._announce, name="registry", daemon=True).start()

    # -- the registry -------------------------------------------------------------

    def about(self) -> dict:
        return {**describe(self.engine, self.limits), "name": self.name, "index": self.index, "pid": os.getpid(),
                "host": socket.gethostname(), "jobs_done": self.jobs_done, "busy": self.busy is not None,
                "ready": self.engine is not None, "rss_mb": rss_mb(os.getpid()), "since": self.since,
                "last_seen": time.time()}

    def announce(self) -> None:
        """Say in the registry what this process is and does (also at once when a job starts or ends)."""
        key = store.worker_key(self.name, self.index)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, json.dumps(self.about()), ex=store.WORKER_TTL_S)
                pipe.zadd(store.WORKERS, {key: time.time()})
                pipe.execute()
        except (RedisError, OSError) as e:
            log.debug("could not tell the registry: %s", e)

    def _announce(self) -> None:
        while True:
            self.announce()
            time.sleep(REGISTRY_INTERVAL_S)

    # -- one job ------------------------------------------------------------------

    def run(self, job_id: str, attempt: int) -> None:
        keys = [store.job_key(job_id), store.lease_key(job_id), store.EVENTS]
        outcome, runs = self._claim(keys=keys, args=[job_id, attempt, self.holder, int(store.LEASE_S * 1000),
                                                     time.time(), store.MAX_RUNS, store.EVENTS_MAXLEN])
        outcome = store.text(outcome)
        if outcome != "claimed":
            # stale or gone: cancelled, finished, or sent again; poison: its last run killed a worker
            log.info("job %s (attempt %s): %s, not run", job_id, attempt, outcome)
            return
        self.busy = job_id
        self.announce()
        try:
            self._run_claimed(job_id, attempt, int(runs))
        finally:
            self.busy = None
            self.announce()
            gc.collect()   # drop the job's pictures now rather than while the next job waits
            release_gpu_memory(self.engine)

    def _run_claimed(self, job_id: str, attempt: int, runs: int) -> None:
        fields = {store.text(k): store.text(v) for k, v in self.redis.hgetall(store.job_key(job_id)).items()}
        images = store.pictures_from_fields(self.redis.hgetall(store.in_key(job_id)))
        op, output = fields["op"], fields["output"]
        options = json.loads(fields["options"])
        time_limit_s = float(fields["time_limit"])
        log.info("job %s: %s, run %d (attempt %d)", job_id, op, runs, attempt)
        cancel = threading.Event()
        lease = Lease(self.redis, job_id, attempt, self.holder, time_limit_s, cancel)
        lease.start()
        try:
            if self.engine is None:
                # A failed build (missing weights, say) is retried per job, so each user gets an answer.
                self.engine, self.build_error = build(self.engine_factory, self.engine_options)
                self.limits = limits_for(self.engine, self.limits_by_device)
            if self.engine is None:
                message = failure(job_id, self.build_error)
            elif not images:
                message = ("failed", job_id, "error", None, "The picture was no longer there to work on.", "")
            else:
                if self.limits is not None:
                    options = apply_limits(op, options, self.limits)
                message = run_job(self.engine, cancel, throttled(self._progress_sender(job_id), PROGRESS_INTERVAL_S),
                                  job_id, op, images, options, output)
            del images
        finally:
            lease.stop()
        if message[0] == "cancelled" and lease.timed_out:
            message = ("failed", job_id, "timeout", None,
                       f"Processing took longer than {time_limit_s:g} seconds and was stopped.", "")
        self._report(job_id, attempt, message)

    def _progress_sender(self, job_id: str):
        def send(done: int, total: int) -> None:
            try:
                self.redis.xadd(store.EVENTS, {"job": job_id, "kind": "progress", "done": done, "total": total},
                                maxlen=store.EVENTS_MAXLEN, approximate=True)
            except (RedisError, OSError):
                pass   # progress is a courtesy; the job goes on
        return send

    def _report(self, job_id: str, attempt: int, message: tuple) -> None:
        kind = message[0]
        result, event = b"", []
        if kind == "done":
            _, _, result, width, height, downsized, seconds = message
            event = ["width", width, "height", height, "downsized", int(downsized), "seconds", f"{seconds:.3f}"]
        elif kind == "failed":
            _, _, reason, code, text, _ = message
            event = ["reason", reason, "code", code or "", "message", text]
        keys = [store.job_key(job_id), store.lease_key(job_id), store.in_key(job_id), store.out_key(job_id),
                store.EVENTS]
        args = [job_id, attempt, kind, result, store.RESULT_TTL_S, store.EVENTS_MAXLEN, *event]
        patience = time.monotonic() + FINISH_PATIENCE_S
        while True:
            try:
                outcome = store.text(self._finish(keys=keys, args=args))
                break
            except (RedisError, OSError) as e:
                if time.monotonic() > patience:
                    log.error("job %s: Redis stayed away; its result is given up (%s)", job_id, e)
                    return
                time.sleep(1.0)
        if outcome == kind == "done":
            self.jobs_done += 1
        elif outcome != kind:
            log.info("job %s: ended %s but was %s by then; nothing reported", job_id, kind, outcome)


_process: WorkerProcess | None = None


def create_app(settings: Settings, processes: int, engine_factory: str = ENGINE_FACTORY):
    from billiard.process import current_process
    from celery.signals import worker_process_init

    app = make_app(settings.redis_url, settings.redis_ca_file)
    app.conf.task_time_limit = settings.job_time_limit_s + HARD_LIMIT_MARGIN_S

    @app.task(name=TASK, ignore_result=True)
    def run(job_id: str, attempt: int) -> None:
        _process.run(job_id, int(attempt))

    @worker_process_init.connect(weak=False)
    def build_engine(**_) -> None:
        global _process
        _process = WorkerProcess(settings, processes, getattr(current_process(), "index", 0), engine_factory)

    return app


def redis_problem(settings: Settings) -> str | None:
    """Why this host cannot work with Redis (unreachable, wrong password, a certificate refused), or None."""
    client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                            **redis_py_options(settings.redis_url, settings.redis_ca_file))
    try:
        client.ping()
        client.set(store.worker_key(settings.worker_name, -1), "starting", ex=store.WORKER_TTL_S)
        client.delete(store.worker_key(settings.worker_name, -1))
    except (RedisError, OSError) as e:
        return f"cannot work with Redis at {safe_url(settings.redis_url)}: {type(e).__name__}: {e}"
    finally:
        client.close()
    return None


def main(settings: Settings, engine_factory: str = ENGINE_FACTORY) -> int:
    """Run the worker host until SIGTERM; 2 when Redis cannot be used (one line on stderr says why)."""
    if (problem := redis_problem(settings)) is not None:
        print(f"stylebot worker: {problem}", file=sys.stderr)
        return 2
    processes = processes_for(settings)
    log.info("worker %s: %d process(es) taking jobs from %s", settings.worker_name, processes,
             safe_url(settings.redis_url))
    app = create_app(settings, processes, engine_factory)
    app.worker_main(["worker", "--pool=prefork", f"--concurrency={processes}", f"--queues={QUEUE}",
                     f"--hostname={settings.worker_name}@{socket.gethostname()}", "--loglevel=INFO",
                     *WORKER_FLAGS])
    return 0

