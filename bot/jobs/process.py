"""One worker process as the local backend sees it: its task queue, result pipe, cancel event and job.

A thread per worker blocks on the pipe and hands each message to the event
loop; the pipe's end-of-file is how a dead worker is noticed, at once and
whatever killed it.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

from bot.jobs import worker as worker_main
from bot.jobs.job import Job


class WorkerProcess:
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

    def start_reader(self, post: Callable[[object], None]) -> None:
        """Pass every message from the child to `post` (from a thread), then None once it is gone."""
        self.reader = threading.Thread(target=self._read, args=(post,), name=f"{self.process.name}-reader",
                                       daemon=True)
        self.reader.start()

    def _read(self, post: Callable[[object], None]) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            try:
                post(message)
            except RuntimeError:    # the loop is closed: nobody is listening any more
                break
        self.conn.close()
        # The pipe closes when the child exits; reap it so it leaves no zombie.
        self.process.join()
        try:
            post(None)
        except RuntimeError:
            pass


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (None where there is no /proc or no such process)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def children_of(parent: int) -> list[int]:
    """The live (not zombie) child processes of `parent`, from /proc; [] where there is none."""
    children = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state, ppid = stat.read().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == parent and state not in "ZX":
            children.append(int(pid))
    return children
