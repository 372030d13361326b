"""Where the networks run and how pictures get there and back.

float16 on CUDA halves memory and doubles speed there; on a CPU float32, or
bfloat16 where the processor computes it natively (nets/precision.py decides).
"""
import logging

import numpy as np
import torch
from PIL import Image

from nets import gpu
from nets.cpus import available_cpus

log = logging.getLogger(__name__)

DEVICE_NAMES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto", slot: int = 0) -> torch.device:
    """"auto" takes a usable GPU and otherwise falls back to the CPU, logging
    why; "cuda" or "cuda:N" insists (NetsError, code "device"). nets/gpu.py
    checks the card generation and the driver, not only that CUDA answers.
    slot: the worker's number, which spreads workers over several GPUs."""
    kind, _, index = name.partition(":")
    if kind not in DEVICE_NAMES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of {', '.join(DEVICE_NAMES)} or cuda:N, not {name!r}")
    if kind == "cpu":
        return torch.device("cpu")
    chosen, why = gpu.choose(name, gpu.query(), slot)
    if chosen == "cpu":
        log.warning("running on the CPU: %s", why)
    else:
        log.info("running on %s: %s", chosen, why)
    return torch.device(chosen)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_for(device: torch.device, precision: str = "fp32") -> torch.dtype:
    """The dtype models and inputs take: float16 on CUDA, else the CPU precision's."""
    return torch.float16 if device.type == "cuda" else DTYPES[precision]


def set_threads(threads: int | None) -> None:
    """Intra-op threads for this process; None: every CPU the container allows."""
    torch.set_num_threads(max(1, threads if threads is not None else available_cpus()))


def model_placement(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and dtype a model's inputs must have."""
    param = next(model.parameters())
    return param.device, param.dtype


def image_to_tensor(img: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An RGB or L picture as a 1xCxHxW tensor in 0..1."""
    pixels = np.array(img)  # a writable copy: torch will not wrap Pillow's read-only buffer
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    # uint8 travels to the device, the float copy is made there: 4x less to move
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(device).to(dtype) / 255


def tensor_to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """A CxHxW tensor in 0..1 as HxWxC uint8 pixels (rounded, clipped)."""
    pixels = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A 1x3xHxW tensor in 0..1 as an RGB picture."""
    return Image.fromarray(tensor_to_pixels(tensor[0]))


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The picture as RGB for a network, and its alpha band if it has one."""
    alpha = img.getchannel("A") if img.mode in ("LA", "RGBA") else None
    return img.convert("RGB"), alpha


def join_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Put an alpha band (already the right size) back on a network's output."""
    if alpha is None:
        return rgb
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out
