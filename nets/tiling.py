"""Cutting pictures into overlapping tiles, and padding them to a network's stride.

A convolutional net run on a tile sees wrong context at the tile's edges. Like
Real-ESRGAN's `tile_pad`, each tile is grown by `pad` pixels of real
neighbourhood, run, and only the output of its centre (the `core`) is kept, so
the tiles join without seams while only one tile at a time is in memory.
"""
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.nn import functional as F

from nets.device import model_placement
from nets.steps import Steps

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)


@dataclass(frozen=True)
class Tile:
    core: Box    # the input pixels this tile answers for; the cores partition the image
    padded: Box  # the core grown by up to `pad` pixels each side, within the image

    def core_within_padded(self, scale: int) -> Box:
        """Where the core lies in the padded tile's output, `scale` times larger."""
        left, top = self.core[0] - self.padded[0], self.core[1] - self.padded[1]
        width, height = self.core[2] - self.core[0], self.core[3] - self.core[1]
        return left * scale, top * scale, (left + width) * scale, (top + height) * scale


def plan_tiles(width: int, height: int, tile: int, pad: int) -> list[Tile]:
    """Row-major tiles of at most `tile` x `tile` pixels; tile <= 0 means one tile."""
    if tile <= 0:
        tile = max(width, height)
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            right, bottom = min(left + tile, width), min(top + tile, height)
            padded = (max(left - pad, 0), max(top - pad, 0), min(right + pad, width), min(bottom + pad, height))
            tiles.append(Tile((left, top, right, bottom), padded))
    return tiles


def run_tiles(net: torch.nn.Module, pixels: torch.Tensor, tiles: list[Tile],
              steps: Steps) -> Iterator[tuple[Tile, torch.Tensor]]:
    """Run `net` on each padded tile of `pixels` (NxCxHxW uint8 on the CPU).

    Yields each tile with the net's output for its whole padded box; the caller
    keeps `tile.core_within_padded(scale)` of it. The picture stays 8-bit on the
    CPU, so only one tile at a time exists in float on the device. Cancel is
    checked before every tile, progress reported after each.
    """
    device, dtype = model_placement(net)
    for tile in tiles:
        steps.check()
        left, top, right, bottom = tile.padded
        piece = pixels[:, :, top:bottom, left:right].to(device).to(dtype) / 255
        with torch.inference_mode():
            # one batch item at a time: activations, not outputs, dominate memory
            out = torch.cat([net(piece[i : i + 1]) for i in range(piece.shape[0])])
        yield tile, out
        steps.advance()


def pad_to_fit(x: torch.Tensor, multiple: int, minimum: int = 1) -> torch.Tensor:
    """Pad right and bottom so both sides divide by `multiple` and reach
    `minimum`; crop the net's output back afterwards.

    Networks with strides need the multiple to give back the input's size, and
    their reflection padding needs a few pixels left at the deepest level. The
    pad reflects the picture, as zeros would darken the border.
    """
    height, width = x.shape[-2:]
    pad_w = max(-(-width // multiple) * multiple, -(-minimum // multiple) * multiple) - width
    pad_h = max(-(-height // multiple) * multiple, -(-minimum // multiple) * multiple) - height
    if not pad_w and not pad_h:
        return x
    # reflection needs more pixels than it pads; a sliver of a picture gets edge copies
    mode = "reflect" if pad_w < width and pad_h < height else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
