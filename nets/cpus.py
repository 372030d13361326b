"""How many CPUs this process may really use.

torch's default thread count is the host's core count, which oversubscribes
a container limited with `docker run --cpus 2` on a big host: its threads
then fight over two cores' worth of time and everything slows down. Kept free
of torch so the bot can size its workers without importing it.
"""
import math
import os
from pathlib import Path


def available_cpus() -> int:
    """The affinity mask, capped by a cgroup CPU quota (v2 `cpu.max`, v1 cfs)."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_quota() -> float | None:
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None
