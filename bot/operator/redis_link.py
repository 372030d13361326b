"""The bot's one Redis client, and whether Redis answers just now.

A Redis that goes away or answers slowly must not freeze the bot. Every
command has a short timeout; the first failure marks the link down, says so
in the log, and from then on nothing waits for Redis: callers fall back (the
storage to memory, the ledger and the counters to writing later) while a
probe pings Redis every few seconds. Once it answers, each callback
registered with `on_recovery` catches up, and the link counts as up again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.jobs.redis_tls import redis_py_options

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = "stylebot"
COMMAND_TIMEOUT_S = 1.0
PROBE_INTERVAL_S = 3.0


class RedisDown(Exception):
    """Redis did not answer (or is known to be away); the caller falls back."""


class RedisLink:
    """The bot's one Redis client, and whether Redis answers just now."""

    def __init__(self, url: str, *, ca_file: Path | None = None, timeout: float = COMMAND_TIMEOUT_S,
                 probe_interval: float = PROBE_INTERVAL_S):
        # No retries inside redis-py: one timeout is all a user's update may wait.
        self.redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0), decode_responses=False,
                                    **redis_py_options(url, ca_file))
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.up = True            # optimistic until a command fails
        self._on_recovery: list[Callable[[], Awaitable[None]]] = []
        self._probe: asyncio.Task | None = None

    def on_recovery(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run callback (in order of registration) once Redis answers again, before it counts as up."""
        self._on_recovery.append(callback)

    async def run(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """One Redis command, or RedisDown at once if Redis is known to be away."""
        if not self.up:
            raise RedisDown()
        return await self.attempt(command)

    async def attempt(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """One Redis command whether or not Redis is thought to be up; a failure marks it down."""
        try:
            # The socket timeouts bound each read; this bounds a command as a whole.
            async with asyncio.timeout(self.timeout * 2):
                return await command(self.redis)
        except (RedisError, OSError, TimeoutError) as e:
            self._went_down(e)
            raise RedisDown() from e

    def _went_down(self, error: BaseException) -> None:
        if self.up:
            self.up = False
            log.warning("Redis is not answering (%s: %s); carrying on in memory until it is back",
                        type(error).__name__, error or "timed out")
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                async with asyncio.timeout(self.timeout * 2):
                    await self.redis.ping()
                for callback in self._on_recovery:
                    await callback()
            except (RedisError, OSError, TimeoutError, RedisDown):
                continue
            except Exception:
                log.exception("catching up with Redis failed; trying again")
                continue
            self.up = True
            log.info("Redis is back; state is kept there again")
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        try:
            await self.redis.aclose(close_connection_pool=True)
        except (RedisError, OSError):
            pass


class WriteBehind:
    """Writes a record to Redis a moment after it changes: one write for a burst of changes.

    For what the bot keeps in Redis whole (the job ledger, the /stats
    counters): `changed()` after each change, and the loop calls `write` once
    `ready()` holds (the owner has read what an earlier process left). A write
    missed while Redis is away is not retried here: the owner's on_recovery
    callback writes the whole record once Redis is back.
    """

    def __init__(self, write: Callable[[], Awaitable[None]], *, ready: Callable[[], bool], delay_s: float = 0.0):
        self.write = write
        self.ready = ready
        self.delay_s = delay_s
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def changed(self) -> None:
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def started(self) -> bool:
        return self._task is not None

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self._changed.clear()
            if not self.ready():
                continue
            try:
                await self.write()
            except RedisDown:
                pass
