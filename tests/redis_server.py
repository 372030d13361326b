"""A real redis-server for tests: its own port and folder, stopped and started at will.

Debian's `redis-server` package (.ci/run installs it). `RedisServer.start()`
raises RedisUnavailable when there is none or it will not come up, so the
fixtures can skip with the reason.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


class RedisUnavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                  else None)
        if binary is None:
            raise RedisUnavailable("no redis-server here (Debian package redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        # An append-only file, so what the bot wrote outlives a stop and start, as on a real volume.
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                log = (self.folder / "redis.log")
                raise RedisUnavailable("redis-server did not come up: "
                                       + (log.read_text()[-300:] if log.exists() else "no log"))
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """One Redis command, for a test to look at what the bot stored."""
        import redis
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def freeze(self) -> None:
        """Still listening, never answering: a Redis that is slow without end."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
