"""A real redis-server for tests: its own port and folder, stopped and started at will.

Debian's `redis-server` package (.ci/run installs it). `RedisServer.start()`
raises RedisUnavailable when there is none or it will not come up, so the
fixtures can skip with the reason.
"""
from __future__ import annotations

import shutil
import signal
import socket
import ssl
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
    """password: requirepass. tls: (CA file, certificate file, key file): the port speaks TLS only."""

    def __init__(self, folder: Path, port: int | None = None, *, password: str | None = None,
                 tls: tuple[Path, Path, Path] | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        args = ["--requirepass", self.password] if self.password else []
        if self.tls is None:
            return args + ["--port", str(self.port)]
        ca, cert, key = self.tls
        return args + ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                       "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]

    def start(self, timeout: float = 10.0) -> "RedisServer":
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                  else None)
        if binary is None:
            raise RedisUnavailable("no redis-server here (Debian package redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        # An append-only file, so what the bot wrote outlives a stop and start, as on a real volume.
        self.proc = subprocess.Popen(
            [binary, *self._listen_args(), "--bind", "127.0.0.1", "--dir", str(self.folder),
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
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                s = raw
                if self.tls is not None:
                    s = ssl.create_default_context(cafile=str(self.tls[0])).wrap_socket(raw, server_hostname="127.0.0.1")
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """One Redis command, for a test to look at what the bot stored."""
        import redis
        client = redis.Redis.from_url(self.url, socket_timeout=2,
                                      **({"ssl_ca_certs": str(self.tls[0])} if self.tls else {}))
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
