"""Start the bot the way production does (`python -m bot`, configured by environment) for tests.

The bot runs as a real subprocess against a FakeTelegram server, so a test
sees what the deployment does: configuration from the environment, signals,
exit codes and the log.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fake_telegram import TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent


class BotProcess:
    """`python -m bot` in the repository root, its stdout and stderr going to one log file.

    api: a FakeTelegram (wait_ready then works) or a base URL.
    """

    def __init__(self, api: FakeTelegram | str, token: str = TOKEN, env_overrides: dict | None = None,
                 weights_dir: str | os.PathLike | None = None, *, log_path: str | os.PathLike | None = None,
                 argv: list[str] | None = None):
        self.telegram = api if isinstance(api, FakeTelegram) else None
        self.api_base = api.base_url if isinstance(api, FakeTelegram) else api
        self.token = token
        self.env_overrides = dict(env_overrides or {})
        self.weights_dir = weights_dir
        if log_path is None:
            log_path = Path(tempfile.mkdtemp(prefix="bot-log-")) / "bot.log"
        self.log_path = Path(log_path)
        # argv replaces `python -m bot` only for the harness's own tests (a stand-in bot).
        self.argv = argv or [sys.executable, "-m", "bot"]
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._polls_before_start = 0

    def environment(self) -> dict:
        env = dict(os.environ)
        env.update({
            "TELEGRAM_API_URL": self.api_base,
            "BOT_TOKEN": self.token,
            "JOB_WORKERS": "1",
            "MAX_SIDE": "256",          # small pictures keep the CPU work in tests short
            "PYTHONUNBUFFERED": "1",    # the log is read while the bot runs
            "NO_PROXY": "127.0.0.1,localhost",
        })
        if self.weights_dir is not None:
            env["WEIGHTS_DIR"] = str(self.weights_dir)
        env.update({key: str(value) for key, value in self.env_overrides.items()})
        return env

    def start(self) -> "BotProcess":
        if self.telegram is not None:
            self._polls_before_start = len(self.telegram.calls("getUpdates"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # Its own session, so that a kill at the end also reaches the job workers it spawned.
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.environment(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the bot polls for updates; fails at once, with the log, if it exits first."""
        if self.telegram is None:
            raise TypeError("wait_ready needs the FakeTelegram the bot talks to")
        end = time.monotonic() + timeout
        while len(self.telegram.calls("getUpdates")) <= self._polls_before_start:
            if self.proc.poll() is not None:
                raise AssertionError(f"the bot exited with {self.proc.returncode} before polling:\n{self.log}")
            if time.monotonic() > end:
                raise AssertionError(f"the bot did not poll for updates within {timeout}s:\n{self.log}")
            time.sleep(0.05)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the bot to exit on its own; its exit code."""
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 15.0) -> tuple[int, str]:
        """SIGTERM (what `docker stop` sends), then SIGKILL to the whole group after `timeout`.

        Returns (exit code, log text); a second call returns the same.
        """
        if self.proc is None:
            raise RuntimeError("the bot was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._reap_group()
        return self.returncode, self.log

    def _reap_group(self) -> None:
        # Workers the bot spawned must not outlive it, even when it died without cleaning up.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def token_leaks(self) -> list[str]:
        """Log lines that carry the token's secret half (the part after the colon)."""
        secret = self.token.split(":", 1)[-1]
        return [line for line in self.log.splitlines() if secret in line]

    def assert_token_not_logged(self) -> None:
        leaks = self.token_leaks()
        assert not leaks, "the bot token appears in the log:\n" + "\n".join(leaks[:5])

    def __enter__(self) -> "BotProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
