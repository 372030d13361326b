"""The number format the networks compute in, chosen at run time for the processor they run on.

On CUDA the networks run in float16. On a CPU, bfloat16 roughly halves the
time where the processor computes it natively (AVX512-BF16 or AMX on x86,
the BF16 extension on Arm): measured on an AMD EPYC with avx512_bf16, 1.75x
for the VGG encoder, 1.8x for CycleGAN, 2.2x for the compact Real-ESRGAN;
on an Intel Xeon with AMX-BF16 2x (CycleGAN) to 5.6x (AdaIN) end to end. On
a processor without it bfloat16 is emulated and about 3x slower than float32,
so "auto" picks it only where the processor has it, and the machines this
runs on differ from day to day. Kept free of torch, so the bot and the bench
can tell without importing it.
"""
from __future__ import annotations

import platform
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
# /proc/cpuinfo flags of native bfloat16 arithmetic: x86 (AVX512-BF16, AMX-BF16) and Arm (FEAT_BF16).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def native_bf16(cpuinfo: str | None = None) -> str | None:
    """The processor flag that says it computes bfloat16 natively, or None."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            # No /proc (macOS): Apple's M2 and later have BF16, but torch's CPU
            # kernels there gain little from it; float32 is the safe answer.
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def choose(requested: str, device_type: str, cpuinfo: str | None = None) -> tuple[str, str]:
    """(precision, why) for a device: fp16 on CUDA; on a CPU fp32 or bf16, as asked or as the processor suits.

    `why` is one line for the log, naming what decided.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if device_type == "cuda":
        return "fp16", "CUDA runs the networks in float16 (CPU_PRECISION applies to the CPU only)"
    flag = native_bf16(cpuinfo)
    if requested == "fp32":
        return "fp32", "float32 was asked for"
    if requested == "bf16":
        if flag:
            return "bf16", f"bfloat16 was asked for; the processor has {flag}"
        return "bf16", ("bfloat16 was asked for, but this processor has no native bfloat16 "
                        f"({platform.machine()}: no {' or '.join(NATIVE_BF16_FLAGS)}): expect it to be slower")
    if flag:
        return "bf16", f"the processor computes bfloat16 natively ({flag})"
    return "fp32", (f"the processor has no native bfloat16 (none of {', '.join(NATIVE_BF16_FLAGS)} in its "
                    "flags), where it would be about 3x slower")


def for_quality(precision: str, device_type: str, *, tf32: bool = False) -> tuple[str, str]:
    """(precision, why) of 💎 Quality mode's VGG, given the engine's own precision.

    Never float16: its gradients underflow (a tiny loss by construction, divided by the
    starting loss), and L-BFGS stops on a zero gradient. bfloat16 has float32's range, so
    on a CPU quality mode follows the engine: bf16 where it computes bfloat16 (natively, or
    because it was asked to), fp32 elsewhere. On CUDA float32, which cuDNN computes in TF32
    on Ampere and newer (`tf32`).
    """
    if device_type == "cuda":
        if tf32:
            return "tf32", "float32 tensors (float16 gradients underflow), convolutions in TF32 on this GPU"
        return "fp32", "float32 (float16 gradients underflow)"
    if precision == "bf16":
        return "bf16", "bfloat16 like the other networks (float32's range: the gradients keep)"
    return "fp32", "float32 like the other networks"
