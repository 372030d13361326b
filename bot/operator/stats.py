"""What the bot has done and is doing, for the operator's /stats.

Counts per operation (done, failed, cancelled, refused) and the last
SAMPLES_KEPT run times of each, for the median. With Redis they are kept
there as one small JSON record, rewritten a moment after each change, so they
outlive restarts; a write missed while Redis was away is made good by the
next one. Without Redis they count from this start.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections import defaultdict, deque

from aiogram.utils.i18n import gettext as _

from bot.chat.watch import JobWatch
from bot.jobs.backend import JobBackend
from bot.jobs.job import JobDone, JobFailed
from bot.jobs.process import rss_mb
from bot.operator.redis_link import KEY_PREFIX, RedisDown, RedisLink, WriteBehind

log = logging.getLogger(__name__)

STATS_KEY = f"{KEY_PREFIX}:stats"
OUTCOMES = ("done", "failed", "cancelled", "refused")
SAMPLES_KEPT = 200
WRITE_DELAY_S = 2.0


class Stats(JobWatch):
    def __init__(self, link: RedisLink | None = None):
        self.link = link
        self.started = time.monotonic()
        self.counts: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
        self.seconds: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=SAMPLES_KEPT))
        self.strangers = 0                 # updates refused by ALLOWED_USERS (once per stranger)
        self.since = time.time()           # when counting began (the oldest record in Redis)
        self._loaded = link is None        # Redis's earlier counts are in (or there is no Redis)
        self._writer = WriteBehind(lambda: self._write(self.link.run), ready=lambda: self._loaded,
                                   delay_s=WRITE_DELAY_S)
        if link is not None:
            link.on_recovery(self._catch_up)

    # -- counting -----------------------------------------------------------------

    def count(self, op: str, outcome: str) -> None:
        self.counts[op][outcome] += 1
        self._writer.changed()

    def event(self, event) -> None:
        if isinstance(event, JobDone):
            self.count(event.job.op, "done")
            self.seconds[event.job.op].append(round(event.seconds, 2))
        elif isinstance(event, JobFailed):
            self.count(event.job.op, "failed")

    def cancelled(self, job) -> None:
        self.count(job.op, "cancelled")

    def refused(self, job, why) -> None:
        self.count(job.op, "refused")

    def stranger_refused(self) -> None:
        self.strangers += 1
        self._writer.changed()

    def median_s(self, op: str) -> float | None:
        samples = self.seconds.get(op)
        return statistics.median(samples) if samples else None

    # -- Redis ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.link is None:
            return
        try:
            await self._load(self.link.run)
        except RedisDown:
            log.warning("could not read the counters yet; counting from now, added to Redis's once it is back")
        self._writer.start()

    async def stop(self) -> None:
        if self._writer.started:
            self._writer.stop()
            if self._loaded:
                try:
                    await self._write(self.link.run)
                except RedisDown:
                    pass

    async def _catch_up(self) -> None:
        if not self._loaded:
            await self._load(self.link.attempt)
        await self._write(self.link.attempt)

    async def _load(self, run) -> None:
        """Add what Redis holds to what this process has counted so far."""
        raw = await run(lambda r: r.get(STATS_KEY))
        if raw:
            stored = json.loads(raw)
            for op, counts in stored.get("counts", {}).items():
                for outcome in OUTCOMES:
                    self.counts[op][outcome] += int(counts.get(outcome, 0))
            for op, samples in stored.get("seconds", {}).items():
                self.seconds[op].extendleft(reversed(samples[-SAMPLES_KEPT:]))
            self.strangers += int(stored.get("strangers", 0))
            self.since = min(self.since, float(stored.get("since", self.since)))
        self._loaded = True

    async def _write(self, run) -> None:
        record = json.dumps({"counts": self.counts, "seconds": {op: list(s) for op, s in self.seconds.items()},
                             "strangers": self.strangers, "since": self.since})
        await run(lambda r: r.set(STATS_KEY, record))


def precision_text(about: dict) -> str:
    """The precision a worker's engine runs in, and 💎 Quality's own where it differs (nets/precision.py)."""
    text = about.get("precision", "?")
    if about.get("quality_precision") and about["quality_precision"] != text:
        text += _(" (💎 Quality: {precision})").format(precision=about["quality_precision"])
    return text


def _own_workers(queue: JobBackend, about: list[dict], workers_wanted: int) -> list[str]:
    pids = queue.worker_pids()
    lines = [_("Queue: {waiting} waiting. Workers alive: {alive} of {wanted}.").format(
        waiting=queue.waiting(), alive=len(pids), wanted=workers_wanted)]
    if about:
        engines = sorted({f"{a.get('device', '?')}, {precision_text(a)}" for a in about})
        lines.append(_("Engine: {engines}.").format(engines="; ".join(engines)))
    else:
        lines.append(_("Engine: no worker is ready yet."))
    bot_mb = rss_mb(os.getpid())
    worker_mb = [mb for mb in map(rss_mb, pids) if mb is not None]
    lines.append(_("Memory: bot {bot} MB, workers {workers} MB.").format(
        bot=round(bot_mb) if bot_mb is not None else "?",
        workers=" + ".join(str(round(mb)) for mb in worker_mb) or "0"))
    return lines


def _worker_hosts(queue: JobBackend, about: list[dict]) -> list[str]:
    """One line per worker process, wherever it runs; one that stopped answering is gone within a minute."""
    lines = [_("Queue: {waiting} waiting. Workers: {n}.").format(waiting=queue.waiting(), n=len(about))]
    now = time.time()
    for worker in about:
        lines.append(_("• {name} #{index}: {device}, {precision}, {jobs} jobs done, {state}, {mb} MB, "
                       "seen {seconds} s ago").format(
            name=worker.get("name", "?"), index=worker.get("index", 0), device=worker.get("device", "?"),
            precision=precision_text(worker), jobs=worker.get("jobs_done", 0),
            state=_("busy") if worker.get("busy") else _("idle"),
            mb=round(worker["rss_mb"]) if worker.get("rss_mb") else "?",
            seconds=max(0, round(now - float(worker.get("last_seen", now))))))
    if not about:
        lines.append(_("No worker is taking jobs: start one with `python -m bot worker`."))
    bot_mb = rss_mb(os.getpid())
    lines.append(_("Memory: bot {bot} MB.").format(bot=round(bot_mb) if bot_mb is not None else "?"))
    return lines


def duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return _("{m} min").format(m=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("{h} h {m} min").format(h=hours, m=minutes)
    return _("{d} d {h} h").format(d=hours // 24, h=hours % 24)


def report(stats: Stats, queue: JobBackend, workers_wanted: int, redis: RedisLink | None, *,
           worker_hosts: bool = False) -> str:
    """The /stats message; worker_hosts: the workers run anywhere (JOB_BACKEND=celery), each listed."""
    about = queue.workers_about()
    lines = [_("📊 Up for {uptime}.").format(uptime=duration_text(time.monotonic() - stats.started))]
    if worker_hosts:
        lines += _worker_hosts(queue, about)
    else:
        lines += _own_workers(queue, about, workers_wanted)
    if redis is None:
        lines.append(_("Counted since this start (no Redis):"))
    else:
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stats.since))
        state = _("Redis answers") if redis.up else _("Redis is not answering")
        lines.append(_("Counted since {since} ({state}):").format(since=since, state=state))
    lines.append(_("operation: done / failed / cancelled / refused, median time"))
    ops = sorted(op for op, counts in stats.counts.items() if any(counts.values()))
    for op in ops:
        c = stats.counts[op]
        median = stats.median_s(op)
        lines.append(f"{op}: {c['done']} / {c['failed']} / {c['cancelled']} / {c['refused']}, "
                     + (_("{s} s").format(s=f"{median:.1f}") if median is not None else "–"))
    if not ops:
        lines.append(_("no jobs yet"))
    lines.append(_("Strangers turned away: {n}.").format(n=stats.strangers))
    return "\n".join(lines)
