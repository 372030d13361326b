"""A job and what happens to it: the types every job backend and the chat side share.

A `Job` names an Engine method (`op`), its pictures (encoded bytes) and its
options; a backend answers with events, in order, ending with exactly one
JobDone or JobFailed (or nothing, for a job the user cancelled). Plain data:
no aiogram, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from uuid import uuid4

OPS = ("stylize", "stylize_quality", "translate", "upscale", "preview_sheet", "upscale_compare")
OUTPUTS = ("jpeg", "png")


@dataclass
class Job:
    user_id: int
    chat_id: int
    op: str                    # an Engine method: stylize, stylize_quality, translate, upscale, preview_sheet,
                               # upscale_compare
    images: dict[str, bytes | list[bytes]]   # the method's picture arguments by name: content+style, image,
                                             # or content+styles (a list)
    options: dict              # the method's keyword arguments (strength, direction, scale, ...)
    output: str = "jpeg"       # how the worker encodes the result: jpeg or png
    id: str = field(default_factory=lambda: uuid4().hex)


@dataclass
class JobQueued:
    job: Job
    position: int              # 0: a worker has it; N: N-th in line (1 = next to start)


@dataclass
class JobStarted:
    job: Job


@dataclass
class JobProgress:
    job: Job
    done: int
    total: int


@dataclass
class JobDone:
    job: Job
    data: bytes                # the picture, encoded as job.output
    width: int
    height: int
    downsized: bool
    seconds: float


@dataclass
class JobFailed:
    job: Job
    reason: str                # error, input, worker_died, timeout; and shutdown, which the queue
                               # never sends: the bot builds it for the jobs stop() hands back
    code: str | None           # a nets error code (for input always set), else None
    message: str               # English, fit to show a person; no traceback


class QueueFull(Exception):
    """Every worker is busy and max_queue jobs are already waiting."""


class UserBusy(Exception):
    """The user already has a job waiting or running."""


class BackendUnavailable(Exception):
    """The backend cannot take jobs just now (Redis does not answer); nothing was queued."""


WORKER_DIED = "The worker processing the picture stopped unexpectedly (it may have run out of memory)."


def check(job: Job) -> None:
    """Refuse a job no worker could run (a programming error, not a user's)."""
    if job.op not in OPS:
        raise ValueError(f"unknown op {job.op!r}")
    if job.output not in OUTPUTS:
        raise ValueError(f"unknown output {job.output!r}")
