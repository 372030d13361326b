"""Real-ESRGAN super-resolution (Wang et al. 2021), x4 (and x2, x3 from it), tiled.

Any picture size runs in bounded memory: the picture stays 8-bit on the CPU,
one overlapping tile at a time goes through the network, and each tile's
centre is pasted straight into the output picture. Transparency goes through
the network too (as grey), as upstream's default does, so edges stay crisp;
grey pictures come back grey.
"""
import copy

import numpy as np
import torch
from PIL import Image
from torch import nn

from nets.arch.srvgg import SRVGGNetCompact
from nets.compare import TILE_CONTEXT
from nets.device import model_placement, tensor_to_pixels
from nets.steps import CancelFlag, Progress, Steps
from nets.tiling import Tile, plan_tiles, run_tiles

MODELS = {
    "general": "realesr_general_x4v3",
    "x4plus": "realesrgan_x4plus",
    "anime": "realesrgan_x4plus_anime_6b",
}
# realesr-general-x4v3 denoises strongly; its "wdn" twin keeps the noise. Upstream
# blends their parameters to give a denoise strength between the two.
GENERAL_WEAK_DENOISE = "realesr_general_wdn_x4v3"
NET_SCALE = 4
# 2 and 3 are upstream's outscale: run x4, then Lanczos down. (x2 of the x4 network
# and then an enlargement by 1.5 would invent less and blur more; x4 then down keeps
# every edge the network drew.)
SCALES = (2, 3, 4)
# Context each tile borrows from its neighbours; upstream's default tile_pad.
TILE_PAD = TILE_CONTEXT


def model_name(model: str, device: torch.device) -> str:
    """The catalog name for "auto", "general", "x4plus" or "anime".

    auto takes the compact general model on CPU, where the 23-block RRDBNet
    takes minutes per picture, and x4plus on CUDA, where it is the better model.
    """
    if model == "auto":
        model = "x4plus" if device.type == "cuda" else "general"
    if model not in MODELS:
        raise ValueError(f"model must be auto or one of {', '.join(MODELS)}, not {model!r}")
    return MODELS[model]


def default_tile(net: nn.Module) -> int:
    """Tile side in input pixels.

    On CPU, 256 px keeps a compact-model tile near 2 s (so cancel and progress
    stay lively) at 16% overlap overhead; RRDBNet's activations are ~4x larger,
    so it gets smaller tiles to stay well under a gigabyte. A GPU in float16
    affords larger ones; 384 for RRDBNet fits 6 GB cards.
    """
    device, _ = model_placement(net)
    compact = isinstance(net, SRVGGNetCompact)
    if device.type == "cuda":
        return 512 if compact else 384
    return 256 if compact else 192


def blend_denoise(general: nn.Module, weak: nn.Module, denoise: float) -> nn.Module:
    """realesr-general with denoise strength 0..1: its parameters are
    denoise * general + (1 - denoise) * weak-denoise, as upstream's DNI."""
    if not 0 <= denoise <= 1:
        raise ValueError(f"denoise must be within 0..1, not {denoise}")
    weak_state = weak.state_dict()
    blended_state = {key: (denoise * value.float() + (1 - denoise) * weak_state[key].float()).to(value.dtype)
                     for key, value in general.state_dict().items()}
    blended = copy.deepcopy(general)
    blended.load_state_dict(blended_state)
    return blended


def upscale(net: nn.Module, image: Image.Image, *, scale: int = 4, tile: int | None = None,
            pad: int = TILE_PAD, progress: Progress | None = None,
            cancel: CancelFlag | None = None) -> Image.Image:
    """`image` (L, LA, RGB or RGBA) enlarged `scale` times, in the same mode.

    tile: side of a tile in input pixels; None picks one for the model and
    device, 0 runs the whole picture at once. Progress counts tiles.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale}")
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    grey = image.mode in ("L", "LA")
    has_alpha = image.mode in ("LA", "RGBA")
    alpha = image.getchannel("A") if has_alpha else None
    # A plain alpha (an opaque PNG saved as RGBA) needs no network pass.
    alpha_low, alpha_high = alpha.getextrema() if alpha is not None else (0, 0)
    alpha_through_net = alpha is not None and alpha_low != alpha_high

    pixels = _network_input(image, alpha if alpha_through_net else None)

    width, height = image.size
    tiles = plan_tiles(width, height, default_tile(net) if tile is None else tile, pad)
    steps = Steps(len(tiles), progress, cancel)
    canvas = Image.new(image.mode, (width * scale, height * scale))
    for part, out in run_tiles(net, pixels, tiles, steps):
        colour = _to_picture(out[0], "L" if grey else "RGB")
        bands = list(_core(colour, part, scale).split())
        if alpha_through_net:
            bands.append(_core(_to_picture(out[1], "L"), part, scale))
        elif alpha is not None:
            bands.append(Image.new("L", bands[0].size, alpha_low))
        canvas.paste(Image.merge(image.mode, bands), (part.core[0] * scale, part.core[1] * scale))
    return canvas


def upscale_region(net: nn.Module, image: Image.Image, box: Tile | tuple[int, int, int, int], *, scale: int = 4,
                   pad: int = TILE_PAD) -> Image.Image:
    """The part `box` (left, top, right, bottom) of what `upscale` makes of `image`, from
    that part and `pad` pixels of context around it only: as one of upscale's tiles."""
    left, top, right, bottom = box
    padded = (max(left - pad, 0), max(top - pad, 0), min(right + pad, image.width), min(bottom + pad, image.height))
    out = upscale(net, image.crop(padded), scale=scale, tile=0)
    return out.crop(Tile(tuple(box), padded).core_within_padded(scale))


def _network_input(image: Image.Image, alpha: Image.Image | None) -> torch.Tensor:
    """N x 3 x H x W uint8: the colour picture and, as a second batch item, the
    alpha as a grey picture. (A function, so its temporaries are freed before
    the output picture is allocated.)"""
    planes = [np.asarray(image.convert("RGB"))]
    if alpha is not None:
        planes.append(np.repeat(np.asarray(alpha)[:, :, None], 3, axis=2))
    return torch.from_numpy(np.stack(planes)).permute(0, 3, 1, 2)


def _to_picture(output: torch.Tensor, mode: str) -> Image.Image:
    """One network output (3 x H x W) as a picture; grey the way upstream does
    (ITU-R 601 luma), which also turns the alpha pass back into one band."""
    picture = Image.fromarray(tensor_to_pixels(output))
    return picture if mode == "RGB" else picture.convert(mode)


def _core(padded_output: Image.Image, tile: Tile, scale: int) -> Image.Image:
    """The part of a padded tile's x4 output that belongs to the tile's core, at `scale`.

    For x2 and x3 the whole padded output is shrunk first. Shrinking with Lanczos
    reads at most 8 x4 pixels around each output pixel, far less than the 4 * pad
    of context, and a tile starting at input pixel L starts at 4L in the x4 output
    and at scale * L in the shrunk one, so both grids line up for every tile and the
    shrunk cores are the same pixels a shrunk whole picture would have.
    """
    if scale != NET_SCALE:
        left, top, right, bottom = tile.padded
        padded_output = padded_output.resize(((right - left) * scale, (bottom - top) * scale), Image.Resampling.LANCZOS)
    return padded_output.crop(tile.core_within_padded(scale))
