"""Where the bot keeps dialogs and profiles: Redis when REDIS_URL is set, else memory.

With Redis, what a restart would forget (each user's dialog step and data,
and the profile beside it: language, fast network, the results' buttons)
lives in Redis. Only ids and state go there; pictures stay in the process.

While the link (bot/operator/redis_link.py) finds Redis away, the storage
keeps the conversations going in memory; once Redis answers, what users did
in the meantime is written to it (see `ResilientStorage.write_back`) and the
bot goes back to it.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

from bot.chat.i18n import PROFILE_DESTINY
from bot.operator.redis_link import KEY_PREFIX, RedisDown, RedisLink

# A dialog nobody finished (a /style never sent its second picture) expires
# after a day; the profile (language, preferences) stays until /reset.
DIALOG_TTL_S = 24 * 3600


class ResilientStorage(BaseStorage):
    """aiogram's RedisStorage, with memory standing in while Redis is away.

    Keys look like stylebot:<chat>:<user>:<destiny>:state|data, destiny being
    "default" for the dialog and "profile" for the long-lived record beside it
    (bot.chat.i18n), so clearing a dialog leaves the language alone. Dialogs expire
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


def build_storage(redis_url: str | None, ca_file: Path | None = None) -> tuple[BaseStorage, RedisLink | None]:
    """The FSM storage for these settings, and the Redis link when there is one."""
    if redis_url is None:
        return MemoryStorage(), None
    link = RedisLink(redis_url, ca_file=ca_file)
    return ResilientStorage(link), link
