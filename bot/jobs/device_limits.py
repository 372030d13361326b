"""The side and step limits of the device a worker really got.

A GPU affords bigger pictures and longer quality runs than a CPU, but
DEVICE=auto may fall back to the CPU (no driver, a card too old for this
torch), and GPU limits there would make a quality job run for most of an hour
and CycleGAN at 2048 px need gigabytes. So the settings carry both sets
(MAX_SIDE & co. for the CPU, GPU_MAX_SIDE & co. for CUDA) and each worker takes
the set of the device its engine ended up on, once it is built. It reports
them in its "ready" message, so what the bot tells users stays true.

Plain data and no torch: both the bot and its workers import this.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceLimits:
    max_side: int           # the longest side any op works at
    quality_steps: int      # L-BFGS steps of a quality job
    quality_max_side: int   # the longest side quality mode works at

    def as_dict(self) -> dict:
        return asdict(self)


def device_type(device: object) -> str:
    """"cuda" for cuda or cuda:N (a torch.device or its text), else "cpu"."""
    return "cuda" if str(device).partition(":")[0] == "cuda" else "cpu"


def for_device(device: object, limits: dict[str, dict]) -> DeviceLimits:
    """The limits for a device, from {"cpu": {...}, "cuda": {...}} as the settings give them."""
    return DeviceLimits(**limits[device_type(device)])


def apply(op: str, options: dict, limits: DeviceLimits) -> dict:
    """A job's options within the limits: a quality job gets its step count and
    side from them, and any side the parent asked for is capped (an upscale asks
    for the side Telegram can take back, which may be more than a CPU affords)."""
    options = dict(options)
    if op == "stylize_quality":
        options["steps"] = min(options.get("steps") or limits.quality_steps, limits.quality_steps)
        options["max_side"] = min(options.get("max_side") or limits.quality_max_side, limits.quality_max_side,
                                  limits.max_side)
    elif options.get("max_side"):
        options["max_side"] = min(options["max_side"], limits.max_side)
    return options
