"""Pacing what the bot sends as a courtesy (progress edits, chat actions), per chat.

Telegram allows about one message a second in a chat and twenty a minute in
a group, and answers floods with 429 and a growing retry_after. Progress is
the only thing the bot sends in a stream, so it is what gives way: edits go
at most every few seconds (longer in groups, where everyone's jobs share the
budget), and a 429 pauses that chat's edits for retry_after instead of
waiting for it. Nothing here sleeps: the caller is told how long to hold off.
"""
from __future__ import annotations

import time

PRIVATE_EDIT_INTERVAL_S = 3.0
GROUP_EDIT_INTERVAL_S = 6.0


def is_group(chat_id: int) -> bool:
    """Groups and channels have negative ids; private chats are the users' own ids."""
    return chat_id < 0


class ChatPacer:
    def __init__(self, private_interval_s: float = PRIVATE_EDIT_INTERVAL_S,
                 group_interval_s: float = GROUP_EDIT_INTERVAL_S):
        self.private_interval_s = private_interval_s
        self.group_interval_s = group_interval_s
        self._next_edit: dict[int, float] = {}      # chat_id -> monotonic time of the next allowed edit
        self._paused_until: dict[int, float] = {}   # chat_id -> end of a 429's retry_after

    def interval(self, chat_id: int) -> float:
        return self.group_interval_s if is_group(chat_id) else self.private_interval_s

    def wait(self, chat_id: int) -> float:
        """Seconds until this chat may get its next edit (0: now)."""
        now = time.monotonic()
        until = max(self._next_edit.get(chat_id, 0.0), self._paused_until.get(chat_id, 0.0))
        return max(0.0, until - now)

    def paused(self, chat_id: int) -> bool:
        return self._paused_until.get(chat_id, 0.0) > time.monotonic()

    def edited(self, chat_id: int) -> None:
        self._next_edit[chat_id] = time.monotonic() + self.interval(chat_id)
        self._forget_old()

    def pause(self, chat_id: int, retry_after: float) -> None:
        self._paused_until[chat_id] = time.monotonic() + retry_after

    def _forget_old(self) -> None:
        if len(self._next_edit) > 10_000:   # chats long quiet need no entry
            now = time.monotonic()
            for table in (self._next_edit, self._paused_until):
                for chat_id in [c for c, t in table.items() if t < now]:
                    del table[chat_id]
