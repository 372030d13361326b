"""Where the bot keeps dialogs and profiles: Redis when REDIS_URL is set, else memory.

With Redis, what a restart would forget (each user's dialog step and data,
and the profile beside it: language, fast network, the results' buttons)
lives in Redis. Only ids and state go there; pictures stay in the process.

A Redis that goes away or answers slowly must not freeze the bot. Every
command has a short timeout; the first failure marks the link down, says so
in the log, and from then on nothing waits for Redis: the storage keeps the
conversations going in memory while a probe pings Redis every few seconds.
Once it answers, what users did in the meantime is written to Redis (see
`ResilientStorage.write_back`) and the bot goes back to it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.i18n import PROFILE_DESTINY

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = "stylebot"
# A dialog nobody finished (a /style never sent its second picture) expires
# after a day; the profile (language, preferences) stays until /reset.
DIALOG_TTL_S = 24 * 3600
COMMAND_TIMEOUT_S = 1.0
PROBE_INTERVAL_S = 3.0


class RedisDown(Exception):
    """Redis did not answer (or is known to be away); the caller falls back."""


class RedisLink:
    """The bot's one Redis client, and whether Redis answers just now."""

    def __init__(self, url: str, *, timeout: float = COMMAND_TIMEOUT_S, probe_interval: float = PROBE_INTERVAL_S):
        # No retries inside redis-py: one timeout is all a user's update may wait.
        self.redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0), decode_responses=False)
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


class ResilientStorage(BaseStorage):
    """aiogram's RedisStorage, with memory standing in while Redis is away.

    Keys look like stylebot:<chat>:<user>:<destiny>:state|data, destiny being
    "default" for the dialog and "profile" for the long-lived record beside it
    (bot.i18n), so clearing a dialog leaves the language alone. Dialogs expire
    after DIALOG_TTL_S; profiles do not.
    """

    def __init__(self, link: RedisLink, *, dialog_ttl_s: int = DIALOG_TTL_S):
        key_builder = DefaultKeyBuilder(prefix=KEY_PREFIX, with_destiny=True)
        self.link = link
        self._dialogs = RedisStorage(link.redis, key_builder, state_ttl=dialog_ttl_s, data_ttl=dialog_ttl_s)
        self._profiles = RedisStorage(link.redis, key_builder)
        self._memory = MemoryStorage()
        self._dirty: set[StorageKey] = set()      # written to memory while Redis was away
        self._cleared: set[StorageKey] = set()    # profiles emptied meanwhile (/reset)
        link.on_recovery(self.write_back)

    def _redis(self, key: StorageKey) -> RedisStorage:
        return self._profiles if key.destiny == PROFILE_DESTINY else self._dialogs

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        if key not in self._dirty:
            try:
                return await self.link.run(lambda _: self._redis(key).set_state(key, state))
            except RedisDown:
                pass
        self._dirty.add(key)
        await self._memory.set_state(key, state)

    async def get_state(self, key: StorageKey) -> str | None:
        if key not in self._dirty:
            try:
                return await self.link.run(lambda _: self._redis(key).get_state(key))
            except RedisDown:
                pass
        return await self._memory.get_state(key)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if key not in self._dirty:
            try:
                return await self.link.run(lambda _: self._redis(key).set_data(key, data))
            except RedisDown:
                pass
        self._dirty.add(key)
        if not data and key.destiny == PROFILE_DESTINY:
            self._cleared.add(key)
        await self._memory.set_data(key, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        if key not in self._dirty:
            try:
                return await self.link.run(lambda _: self._redis(key).get_data(key))
            except RedisDown:
                pass
        return await self._memory.get_data(key)

    async def write_back(self) -> None:
        """Redis answers again: store what changed in memory meanwhile, then forget it there.

        A dialog written during the outage replaces the stored one (the user
        has moved on). A profile is merged into the stored one, so a result
        remembered meanwhile does not wipe the language chosen long before;
        a profile cleared meanwhile (/reset) starts from nothing.
        """
        while self._dirty:
            key = next(iter(self._dirty))
            record = self._memory.storage[key]
            state, written = record.state, record.data
            data = dict(written)
            redis = self._redis(key)
            if key.destiny == PROFILE_DESTINY and key not in self._cleared:
                data = {**await self.link.attempt(lambda _: redis.get_data(key)), **data}
            await self.link.attempt(lambda _: redis.set_state(key, state))
            await self.link.attempt(lambda _: redis.set_data(key, data))
            # Written while we awaited? Then it stays dirty for the next round.
            if self._memory.storage.get(key) is record and record.state == state and record.data is written:
                self._dirty.discard(key)
                self._cleared.discard(key)
                del self._memory.storage[key]

    async def close(self) -> None:
        # aiogram closes the storage first thing at shutdown; the ledger and the
        # counters still write after that, so bot.app closes the link last.
        pass


def build_storage(redis_url: str | None) -> tuple[BaseStorage, RedisLink | None]:
    """The FSM storage for these settings, and the Redis link when there is one."""
    if redis_url is None:
        return MemoryStorage(), None
    link = RedisLink(redis_url)
    return ResilientStorage(link), link
