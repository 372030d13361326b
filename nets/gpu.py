"""Can this torch use this machine's GPUs? Checked before any model goes there.

`torch.cuda.is_available()` only says that a driver answered. A card whose
generation the wheel carries no kernels for still reports available and then
fails every job with "no kernel image is available"; a driver too old for the
wheel's CUDA makes it report unavailable with no reason given. So the facts are
gathered once (`query`, the only function here that asks torch and the driver)
and judged by plain rules (`usable`, `choose`) that tests feed with made-up facts.

The rules (NVIDIA's CUDA compatibility guide, PyTorch's own `_check_cubins`):
- Kernels: `sm_XY` machine code runs on a card of compute capability X.Z with
  Z >= Y (same major only: sm_80 runs on 8.6 and 8.9, never on 9.0);
  `sm_XYa` runs on X.Y alone; `sm_XYf` on the family X.Z with Z >= Y.
  `compute_XY` (PTX) is compiled by the driver for any card of X.Y or newer,
  provided the driver is at least as new as the CUDA that wrote the PTX.
- Driver: a driver runs every CUDA runtime of its own major version or older
  (minor-version compatibility: a CUDA 12.8 wheel runs on a driver that speaks
  12.2, R535), but not a newer major one (a CUDA 13 wheel needs a CUDA 13
  driver, R580 or newer). Only PTX needs the driver's minor to be new enough.
"""
from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from nets.errors import NetsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CudaFacts:
    """What torch and the driver say, as plain values."""

    torch_cuda: str | None                  # torch.version.cuda: "13.0", or None for a +cpu build
    driver_cuda: int | None = None          # cuDriverGetVersion: 12020 for CUDA 12.2; None: no driver library
    driver_error: str | None = None         # why the driver could not be asked, when it could not
    device_count: int = 0
    capabilities: tuple[tuple[int, int], ...] = ()   # per device: (major, minor)
    names: tuple[str, ...] = ()
    arch_list: tuple[str, ...] = ()  # torch.cuda.get_arch_list(): sm_75 ... compute_120


def cuda_version_number(text: str) -> int:
    """"12.8" -> 12080, the form cuDriverGetVersion uses."""
    major, _, minor = text.partition(".")
    return int(major) * 1000 + int(minor or 0) * 10


def version_text(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def driver_cuda_version() -> tuple[int | None, str | None]:
    """The newest CUDA the installed driver speaks, asked of libcuda directly
    (it answers even where torch's runtime refuses to start)."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return None, f"the NVIDIA driver library libcuda.so.1 could not be loaded ({exc})"
    version = ctypes.c_int(0)
    status = libcuda.cuDriverGetVersion(ctypes.byref(version))
    if status != 0:
        return None, f"the NVIDIA driver did not say its version (CUDA error {status})"
    return version.value, None


def visible_gpu_count() -> int:
    """How many GPUs this process would see, without initialising CUDA (a process that forks
    workers must not): CUDA_VISIBLE_DEVICES when set, else the /dev/nvidiaN device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    return len([p for p in Path("/dev").glob("nvidia*") if p.name[len("nvidia"):].isdigit()])


def query() -> CudaFacts:
    """Ask torch and the driver. The one boundary the tests replace."""
    import torch

    if torch.version.cuda is None:
        return CudaFacts(torch_cuda=None)
    driver, driver_error = driver_cuda_version()
    if driver is None or not torch.cuda.is_available():
        return CudaFacts(torch.version.cuda, driver, driver_error)
    count = torch.cuda.device_count()
    return CudaFacts(torch.version.cuda, driver, driver_error, count,
                     tuple(torch.cuda.get_device_capability(i) for i in range(count)),
                     tuple(torch.cuda.get_device_name(i) for i in range(count)),
                     tuple(torch.cuda.get_arch_list()))


def _arch(entry: str) -> tuple[str, int, int, str] | None:
    """"sm_86" -> ("sm", 8, 6, ""), "sm_90a" -> ("sm", 9, 0, "a"), "compute_120" -> ("compute", 12, 0, "")."""
    kind, _, number = entry.partition("_")
    suffix = number[-1] if number[-1:].isalpha() else ""
    digits = number.removesuffix(suffix) if suffix else number
    if kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
        return None
    return kind, int(digits[:-1]), int(digits[-1]), suffix


def kernels_for(capability: tuple[int, int], arch_list: tuple[str, ...], torch_cuda: str,
                driver_cuda: int) -> str | None:
    """The arch_list entry that gives this card its kernels, or None."""
    major, minor = capability
    fitting = []
    for entry in arch_list:
        parsed = _arch(entry)
        if parsed is None:
            continue
        kind, arch_major, arch_minor, suffix = parsed
        if kind == "sm" and arch_major == major and (arch_minor == minor if suffix == "a" else arch_minor <= minor):
            fitting.append((arch_minor, entry))
    if fitting:
        return max(fitting)[1]   # the newest that fits, as the CUDA loader picks
    # PTX only where no machine code fits: the driver compiles it (slowly, once) if it is new enough.
    for entry in arch_list:
        parsed = _arch(entry)
        if parsed and parsed[0] == "compute" and (parsed[1], parsed[2]) <= capability \
                and driver_cuda >= cuda_version_number(torch_cuda):
            return entry
    return None


def driver_problem(facts: CudaFacts) -> str | None:
    """Why no GPU can be used at all, or None."""
    if facts.torch_cuda is None:
        return "this torch is a CPU-only build (torch.version.cuda is None)"
    if facts.driver_cuda is None:
        return (facts.driver_error or "no NVIDIA driver was found") + \
            "; on Docker, run with --gpus all and the NVIDIA container toolkit"
    needed = cuda_version_number(facts.torch_cuda)
    if facts.driver_cuda // 1000 < needed // 1000:
        return (f"the NVIDIA driver speaks CUDA {version_text(facts.driver_cuda)}, but this torch is built for "
                f"CUDA {facts.torch_cuda} and needs a driver for CUDA {needed // 1000}.x"
                f"{' (R580 or newer)' if needed // 1000 >= 13 else ''}")
    if facts.device_count == 0:
        return "the driver sees no GPU (is CUDA_VISIBLE_DEVICES or NVIDIA_VISIBLE_DEVICES empty?)"
    return None


def card_problem(facts: CudaFacts, index: int) -> str | None:
    """Why GPU `index` cannot run this torch's kernels, or None."""
    major, minor = facts.capabilities[index]
    if kernels_for((major, minor), facts.arch_list, facts.torch_cuda, facts.driver_cuda) is None:
        return (f"GPU {index} ({facts.names[index]}) has compute capability {major}.{minor}, and this torch "
                f"(CUDA {facts.torch_cuda}) carries kernels for {' '.join(facts.arch_list)} only")
    return None


def choose(name: str, facts: CudaFacts, slot: int = 0) -> tuple[str, str]:
    """(device, why) for DEVICE=auto, cuda or cuda:N: "cpu" or "cuda:N".

    auto falls back to the CPU and says why; cuda and cuda:N raise NetsError
    (code "device") instead. Without an index, worker `slot` takes the usable
    GPUs in turn (slot mod their number), so several workers spread over them.
    """
    kind, _, index = name.partition(":")
    problem = driver_problem(facts)
    if problem is None and index:
        wanted = int(index)
        if wanted >= facts.device_count:
            raise NetsError(f"DEVICE={name} asks for GPU {wanted}, but the driver sees "
                            f"{facts.device_count} (cuda:0 to cuda:{facts.device_count - 1}).", code="device")
        problem = card_problem(facts, wanted)
        if problem is None:
            return f"cuda:{wanted}", f"GPU {wanted} ({facts.names[wanted]}) as asked"
    elif problem is None:
        problems = [card_problem(facts, i) for i in range(facts.device_count)]
        usable = [i for i, p in enumerate(problems) if p is None]
        for p in problems:
            if p is not None:
                log.warning("not using a GPU: %s", p)
        if usable:
            chosen = usable[slot % len(usable)]
            return f"cuda:{chosen}", f"GPU {chosen} ({facts.names[chosen]}), {len(usable)} usable"
        problem = "; ".join(problems)
    if kind == "cuda":
        raise NetsError(f"DEVICE={name} was asked for, but {problem}.", code="device")
    return "cpu", f"no usable GPU: {problem}"


# The share of a GPU's memory the model cache may fill; the rest is for a job's
# activations, which at 2048 px are several times the models' own size.
MODEL_SHARE = 0.25


def model_budget(device, cache_bytes: int) -> int:
    """The model cache's budget on `device`: cache_bytes, but on a GPU at most
    MODEL_SHARE of its memory, so a small card keeps room to compute."""
    if str(device).partition(":")[0] != "cuda":
        return cache_bytes
    return min(cache_bytes, int(total_memory(device) * MODEL_SHARE))


def total_memory(device) -> int:
    import torch

    return torch.cuda.get_device_properties(device).total_memory


def convolutions_in_tf32(device) -> bool:
    """Whether cuDNN runs this device's float32 convolutions in TF32: on Ampere (8.0) and newer,
    where torch lets it by default (`torch.backends.cudnn.allow_tf32`)."""
    if str(device).partition(":")[0] != "cuda":
        return False
    import torch

    return torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability(device)[0] >= 8
