"""The container's health: an event loop that answers, and a live job worker.

The bot's event loop writes a heartbeat file every HEARTBEAT_INTERVAL_S:
its pid, the time, and the job worker processes it runs on this host (a
worker host, `python -m bot worker`, writes one too, from a thread).
`python -m bot.operator.health` is the image's HEALTHCHECK: it fails when
the heartbeat is older than --max-age seconds (the loop is stuck: a blocking
call, a deadlock), or when the process should run job workers and none of
those it named is alive (a dead one is replaced within seconds, so only a
host that cannot fails for long; a front end with JOB_WORKERS=0 runs none).
It reads /proc only: no aiogram, no Telegram, nothing slow.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
MAX_AGE_S = 30.0
DEFAULT_FILE = "/tmp/stylebot-heartbeat"


class Heartbeat:
    """Writes the heartbeat file from the event loop until stopped."""

    def __init__(self, path: Path, interval: float = HEARTBEAT_INTERVAL_S, *,
                 workers: Callable[[], list[int]] = list, needs_workers: bool = True):
        self.path = Path(path)
        self.interval = interval
        self.workers = workers               # the pids of this host's job workers, asked at each beat
        self.needs_workers = needs_workers
        self._task: asyncio.Task | None = None

    def beat(self) -> None:
        # Written aside and renamed, so the check never reads half a file.
        part = self.path.with_name(self.path.name + ".part")
        try:
            part.write_text(json.dumps({"pid": os.getpid(), "time": time.time(), "workers": self.workers(),
                                        "needs_workers": self.needs_workers}))
            os.replace(part, self.path)
        except OSError as e:
            log.warning("could not write the heartbeat file %s: %s", self.path, e)

    async def _run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def start_thread(self) -> None:
        """For a process without an event loop (a worker host): beat from a daemon thread."""
        def run():
            while True:
                self.beat()
                time.sleep(self.interval)
        threading.Thread(target=run, name="heartbeat", daemon=True).start()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            self.path.unlink()
        except OSError:
            pass


def is_alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state not in "ZX"


def check(path: Path, max_age_s: float) -> str | None:
    """None when healthy, else why not (one line)."""
    try:
        beat = json.loads(path.read_text())
        age = time.time() - float(beat["time"])
        pid = int(beat["pid"])
        workers = [int(w) for w in beat.get("workers", [])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"no heartbeat in {path} ({type(e).__name__})"
    if age > max_age_s:
        return f"the event loop has not answered for {age:.0f} s"
    if beat.get("needs_workers", True) and not any(map(is_alive, workers)):
        return f"the process {pid} has no live job worker"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.operator.health", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=Path(os.environ.get("HEARTBEAT_FILE") or DEFAULT_FILE))
    parser.add_argument("--max-age", type=float, default=MAX_AGE_S, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    problem = check(args.file, args.max_age)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
