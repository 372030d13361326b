"""Worker hosts for tests: `python -m bot worker` as a real subprocess, as production runs it.

Each host has its own name, log and heartbeat file; a test can kill one of
its pool processes (SIGKILL, as the OOM killer does), the whole host
(every process at once, as a lost machine), or freeze it (SIGSTOP: a host
whose network is cut keeps running but says nothing).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.jobs.process import children_of
from tests.bot_harness import ROOT

FAKE = "tests.bot.jobs.fake_engine:"


class WorkerHost:
    def __init__(self, redis_url: str, folder: Path, name: str, *, weights_dir: Path | None = None,
                 processes: int = 1, env: dict | None = None):
        self.name = name
        self.redis_url = redis_url
        self.log_path = Path(folder) / f"worker-{name}.log"
        self.env = {**os.environ, "REDIS_URL": redis_url, "WORKER_NAME": name, "JOB_WORKERS": str(processes),
                    "DEVICE": "cpu", "HEARTBEAT_FILE": str(Path(folder) / f"heartbeat-{name}"),
                    "PYTHONUNBUFFERED": "1", **({"WEIGHTS_DIR": str(weights_dir)} if weights_dir else {}),
                    **{k: str(v) for k, v in (env or {}).items()}}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerHost":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def registry(self, redis) -> list[dict]:
        keys = [k for k in redis.zrange("stylebot:q:workers", 0, -1) if f":worker:{self.name}:".encode() in k]
        return [json.loads(v) for v in redis.mget(keys) if v] if keys else []

    def wait_ready(self, redis, processes: int = 1, timeout: float = 60.0) -> "WorkerHost":
        """Until its processes say in the registry that their engines are built."""
        end = time.monotonic() + timeout
        while len([w for w in self.registry(redis) if w.get("ready")]) < processes:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log[-3000:]}")
            if time.monotonic() > end:
                raise AssertionError(f"worker {self.name} not ready within {timeout} s:\n{self.log[-3000:]}")
            time.sleep(0.2)
        return self

    def pool(self) -> list[int]:
        """Its pool processes (the ones that run jobs)."""
        return children_of(self.proc.pid)

    def kill_pool_process(self) -> int:
        pid = self.pool()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """Every process of the host at once, as when the machine goes away."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.thaw()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
        return self.proc.returncode
