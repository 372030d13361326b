"""The bot's settings: the process environment over a `.env` file.

Every mistake here is reported as one `SettingsError` line so that `python -m
bot` can print it and exit with status 2 instead of a traceback.
"""
from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from nets.catalog import FAST_STYLES  # torch-free; the bot never imports the engine
from nets.precision import PRECISIONS as CPU_PRECISIONS  # torch-free, like the rest of what the bot takes from nets

OFFICIAL_API_URL = "https://api.telegram.org"

# "123456:ABC-def_...": the bot id, a colon, then the secret part.
TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
# Telegram accepts these characters only in X-Telegram-Bot-Api-Secret-Token.
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
DEVICES = ("auto", "cpu", "cuda")
WEBHOOK_PORTS = (80, 88, 443, 8443)   # the only ports Telegram delivers webhooks to
REDIS_SCHEMES = ("redis", "rediss", "unix")
JOB_BACKENDS = ("local", "celery")
USERNAME_PATTERN = re.compile(r"^@?([A-Za-z0-9_]{1,32})$")
# Per user and hour. A quality picture keeps a 2-core host's one worker busy
# for about three minutes, so 20 of them is an hour of the host; fast jobs
# take seconds, and nobody plays with the bot for long at 20 an hour.
DEFAULT_JOBS_PER_HOUR = 20


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line fit to print."""


@dataclass(frozen=True)
class Settings:
    bot_token: str | None       # None only for a worker host (`python -m bot worker`), which needs none
    telegram_api_url: str = OFFICIAL_API_URL
    # TELEGRAM_API_LOCAL: a self-hosted Local Bot API server (--local): any webhook URL and
    # port, and files up to 2 GB read from the local path it returns.
    telegram_api_local: bool = False
    weights_dir: Path = Path("weights")
    admin_chat_id: int | None = None
    device: str = "auto"
    max_side: int = 1024
    # JOB_BACKEND: local (worker processes of the bot's own) or celery (a queue in
    # Redis that worker hosts anywhere take from, bot/jobs/celery_*.py).
    job_backend: str = "local"
    # Worker processes on this host. With celery, 0 makes the bot a pure front end;
    # on a worker host None means one per GPU (or one on a CPU), decided there.
    job_workers: int | None = 1
    worker_name: str = field(default_factory=socket.gethostname)   # WORKER_NAME, in /stats and the logs
    worker_threads: int | None = None   # WORKER_THREADS: torch threads per worker process; None: cores / processes
    redis_ca_file: Path | None = None   # REDIS_CA_FILE: the CA that signed a rediss:// server's certificate
    max_queue: int = 8
    job_time_limit_s: float = 600.0
    # Gatys's method costs a VGG forward and backward per step (~1.6 s at 384 px
    # on 2 CPU threads, scripts/bench.py); coarse to fine, 40 steps cost about 22
    # full-size ones, so the CPU default stays within 45 s and 384 px still shows
    # brush strokes in a chat (README, *💎 Quality mode, tuned*). A worker on a
    # GPU takes the gpu_* values below instead.
    fast_style: str | None = None   # FAST_STYLE; None: lite on the CPU, adain on CUDA
    cpu_precision: str = "auto"     # CPU_PRECISION: bf16 where the processor computes it natively
    quality_steps: int = 40
    quality_max_side: int = 384
    # The same three for a worker that got a GPU (bot/jobs/device_limits.py): float16
    # affords twice the side, and a quality step takes milliseconds there.
    gpu_max_side: int = 2048
    gpu_quality_steps: int = 300
    gpu_quality_max_side: int = 1024
    presets_dir: Path | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    port: int = 8080
    redis_url: str | None = None            # REDIS_URL; None: state in memory, as before
    allowed_users: frozenset | None = None  # ALLOWED_USERS: ids (int) and lower-case usernames; None: all
    jobs_per_hour: int = DEFAULT_JOBS_PER_HOUR   # JOBS_PER_HOUR; 0: no limit
    heartbeat_file: Path = Path("/tmp/stylebot-heartbeat")   # HEARTBEAT_FILE, for the health check
    # What the ready workers said of their engines (bot.jobs.worker.describe): the one part
    # learnt at run time, since only a worker can tell whether DEVICE=auto found a GPU.
    engine_reports: dict = field(default_factory=dict, compare=False, repr=False)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id == self.admin_chat_id

    @property
    def default_fast_style(self) -> str:
        """The fast network offered first: FAST_STYLE, else the one made for the device.

        With DEVICE=auto the bot cannot see the GPU without torch; the workers
        can, and their engines pick by the device they got (lite on the CPU,
        AdaIN on CUDA). Until one is ready, lite is the safe guess."""
        if self.fast_style is not None:
            return self.fast_style
        reported = self.engine_reports.get("fast_style")
        if reported is not None:
            return reported
        return "adain" if self.device.startswith("cuda") else "lite"

    def device_limits(self) -> dict[str, dict]:
        """MAX_SIDE & co. per device; each worker takes the set of the device it got."""
        return {"cpu": {"max_side": self.max_side, "quality_steps": self.quality_steps,
                        "quality_max_side": self.quality_max_side},
                "cuda": {"max_side": self.gpu_max_side, "quality_steps": self.gpu_quality_steps,
                         "quality_max_side": self.gpu_quality_max_side}}

    @property
    def use_webhook(self) -> bool:
        return self.webhook_url is not None

    @property
    def webhook_path(self) -> str:
        """The path part of WEBHOOK_URL: where the aiohttp app listens for updates."""
        return urlsplit(self.webhook_url or "").path or "/"

    def __repr__(self) -> str:
        # The token must never reach a log line, even through a debug print.
        return (f"Settings(api={self.telegram_api_url!r}, webhook={self.webhook_url!r}, backend={self.job_backend!r}, "
                f"workers={self.job_workers})")


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env", *,
                  worker: bool = False) -> Settings:
    """Read settings; variables set in the environment win over the `.env` file.

    worker: for `python -m bot worker`, a host that only runs jobs: it needs no
    BOT_TOKEN, always takes its jobs through Celery, so needs REDIS_URL.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    env = _Reader(values)
    api_local = env.flag("TELEGRAM_API_LOCAL")
    backend = "celery" if worker else env.choice("JOB_BACKEND", JOB_BACKENDS, default="local")
    redis_url = _redis_url(env.text("REDIS_URL"))
    if backend == "celery" and redis_url is None:
        raise SettingsError("JOB_BACKEND=celery needs REDIS_URL: the queue lives in Redis"
                            if not worker else "a worker host needs REDIS_URL: the bot's queue lives in Redis")

    return Settings(
        bot_token=None if worker else _token(env.text("BOT_TOKEN")),
        telegram_api_url=_api_url(env.text("TELEGRAM_API_URL") or OFFICIAL_API_URL),
        telegram_api_local=api_local,
        weights_dir=Path(env.text("WEIGHTS_DIR") or "weights"),
        admin_chat_id=env.integer("ADMIN_CHAT_ID", default=None, minimum=None),
        device=env.choice("DEVICE", DEVICES, default="auto"),
        max_side=env.integer("MAX_SIDE", default=1024, minimum=64),
        job_backend=backend,
        # A celery bot may run no workers of its own; a local one needs at least one.
        job_workers=env.integer("JOB_WORKERS", default=None if worker else 1,
                                minimum=0 if backend == "celery" and not worker else 1),
        worker_name=env.text("WORKER_NAME") or socket.gethostname(),
        worker_threads=env.integer("WORKER_THREADS", default=None, minimum=1),
        redis_ca_file=_existing_file("REDIS_CA_FILE", env.text("REDIS_CA_FILE")),
        max_queue=env.integer("MAX_QUEUE", default=8, minimum=1),
        job_time_limit_s=float(env.integer("JOB_TIME_LIMIT", default=600, minimum=10)),
        fast_style=_fast_style(env.text("FAST_STYLE")),
        cpu_precision=env.choice("CPU_PRECISION", CPU_PRECISIONS, default="auto"),
        quality_steps=env.integer("QUALITY_STEPS", default=40, minimum=1, maximum=2000),
        quality_max_side=env.integer("QUALITY_MAX_SIDE", default=384, minimum=64),
        gpu_max_side=env.integer("GPU_MAX_SIDE", default=2048, minimum=64),
        gpu_quality_steps=env.integer("GPU_QUALITY_STEPS", default=300, minimum=1, maximum=2000),
        gpu_quality_max_side=env.integer("GPU_QUALITY_MAX_SIDE", default=1024, minimum=64),
        presets_dir=Path(p) if (p := env.text("PRESETS_DIR")) else None,
        webhook_url=_webhook_url(env.text("WEBHOOK_URL"), local=api_local),
        webhook_secret=_webhook_secret(env.text("WEBHOOK_SECRET")),
        port=env.integer("PORT", default=8080, minimum=1, maximum=65535),
        redis_url=redis_url,
        allowed_users=_allowed_users(env.text("ALLOWED_USERS")),
        jobs_per_hour=env.integer("JOBS_PER_HOUR", default=DEFAULT_JOBS_PER_HOUR, minimum=0),
        heartbeat_file=Path(env.text("HEARTBEAT_FILE") or "/tmp/stylebot-heartbeat"),
    )


class _Reader:
    """Typed reads of string variables; empty counts as unset."""

    def __init__(self, values: Mapping[str, str]):
        self.values = values

    def text(self, name: str) -> str | None:
        value = (self.values.get(name) or "").strip()
        return value or None

    def integer(self, name: str, *, default: int | None, minimum: int | None, maximum: int | None = None) -> int | None:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{name} must be at most {maximum}, got {value}")
        return value

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "0").lower()
        if raw not in ("0", "1", "true", "false", "yes", "no"):
            raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")
        return raw in ("1", "true", "yes")

    def choice(self, name: str, choices: tuple[str, ...], *, default: str) -> str:
        raw = (self.text(name) or default).lower()
        # "cuda:1" picks a GPU; the engine understands torch device strings.
        if raw.split(":")[0] not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw


def _fast_style(raw: str | None) -> str | None:
    if raw is not None and raw.lower() not in FAST_STYLES:
        raise SettingsError(f"FAST_STYLE must be one of {', '.join(FAST_STYLES)}, got {raw!r}")
    return raw.lower() if raw is not None else None


def _token(raw: str | None) -> str:
    if raw is None:
        raise SettingsError("BOT_TOKEN is not set: put the token from @BotFather in the environment or in .env")
    if not TOKEN_PATTERN.match(raw):
        # Never echo the value: a malformed token may still be mostly secret.
        raise SettingsError("BOT_TOKEN is malformed: expected the form 123456789:AAF... as given by @BotFather")
    return raw


def _api_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"TELEGRAM_API_URL must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _webhook_url(raw: str | None, *, local: bool) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"WEBHOOK_URL must be an https URL that Telegram can reach, got {raw!r}")
    if local:
        return raw   # a Local Bot API server delivers to any URL and port
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SettingsError(f"WEBHOOK_URL has a bad port, got {raw!r}") from None
    if parts.scheme != "https" or port not in WEBHOOK_PORTS:
        raise SettingsError(f"WEBHOOK_URL must be https on port 80, 88, 443 or 8443, the only ones Telegram "
                            f"sends to, got {raw!r} (TELEGRAM_API_LOCAL=1 lifts this for a Local Bot API server)")
    return raw


def _webhook_secret(raw: str | None) -> str | None:
    if raw is not None and not SECRET_PATTERN.match(raw):
        raise SettingsError("WEBHOOK_SECRET may hold only letters, digits, _ and -, at most 256 of them")
    return raw


def _redis_url(raw: str | None) -> str | None:
    if raw is not None and urlsplit(raw).scheme not in REDIS_SCHEMES:
        # The URL may hold a password: name the scheme only.
        raise SettingsError("REDIS_URL must look like redis://host:6379/0 (or rediss://, unix://), "
                            f"got a URL starting {urlsplit(raw).scheme or raw[:8]!r}")
    return raw


def _existing_file(name: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    if not Path(raw).is_file():
        raise SettingsError(f"{name} names no readable file: {raw!r}")
    return Path(raw)


def _allowed_users(raw: str | None) -> frozenset | None:
    """"123456, @alice bob": numeric user ids and usernames (with or without @), any case."""
    if raw is None:
        return None
    allowed: set[int | str] = set()
    for item in re.split(r"[,\s]+", raw.strip()):
        if item.lstrip("-").isdigit():
            allowed.add(int(item))
        elif match := USERNAME_PATTERN.match(item):
            allowed.add(match.group(1).lower())
        else:
            raise SettingsError(f"ALLOWED_USERS holds {item!r}: expected numeric user ids and @usernames, "
                                "separated by commas or spaces")
    return frozenset(allowed)
