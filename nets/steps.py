"""Progress and cancellation between the steps of a long operation.

Every op reports `progress(done, total)` after each step (a layer group, an
L-BFGS evaluation, a tile) and checks the caller's cancel flag before the next
one, so a cancel takes effect within one step. Kept free of torch.
"""
from typing import Callable, Protocol

from nets.errors import Cancelled

Progress = Callable[[int, int], None]  # (done, total)


class CancelFlag(Protocol):
    """threading.Event, multiprocessing.Event or anything with is_set()."""

    def is_set(self) -> bool: ...


class Steps:
    """Counts the steps of one op, reports them and honours cancel."""

    def __init__(self, total: int, progress: Progress | None = None, cancel: CancelFlag | None = None,
                 done: int = 0):
        self.total = total
        self.done = done  # where an op that continues another one's count starts
        self._progress = progress
        self._cancel = cancel

    def check(self) -> None:
        """Raise Cancelled if the caller has asked to stop."""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled()

    def advance(self, count: int = 1) -> None:
        """Mark `count` steps done and report it; past the total there is nothing new to say."""
        done = min(self.done + count, self.total)
        if done == self.done:
            return
        self.done = done
        if self._progress is not None:
            self._progress(self.done, self.total)
