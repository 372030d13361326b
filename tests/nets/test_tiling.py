"""Tiles: they cover the picture exactly once, join without seams, and bound memory."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nets import upscale as upscaling
from nets.arch.srvgg import SRVGGNetCompact
from nets.steps import Steps
from nets.tiling import pad_to_fit, plan_tiles, run_tiles


def picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Noise, alpha included: the hardest case for seams."""
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def small_srvgg() -> SRVGGNetCompact:
    """Four 3x3 convolutions: it sees 4 pixels around each pixel, less than TILE_PAD."""
    torch.manual_seed(0)
    return SRVGGNetCompact(num_feat=8, num_conv=2).eval()


@pytest.mark.parametrize("width,height,tile,pad", [(50, 30, 16, 4), (16, 16, 16, 10), (7, 40, 8, 0), (5, 5, 0, 3)])
def test_tile_cores_cover_every_pixel_once(width, height, tile, pad):
    cover = np.zeros((height, width), int)
    for part in plan_tiles(width, height, tile, pad):
        left, top, right, bottom = part.core
        cover[top:bottom, left:right] += 1
        p_left, p_top, p_right, p_bottom = part.padded
        assert (p_left, p_top) == (max(left - pad, 0), max(top - pad, 0))
        assert (p_right, p_bottom) == (min(right + pad, width), min(bottom + pad, height))
        if tile:
            assert right - left <= tile and bottom - top <= tile
    assert (cover == 1).all()


def test_core_within_padded_is_scaled():
    part = plan_tiles(40, 40, 16, 4)[4]  # the middle tile: padded on every side
    assert part.core == (16, 16, 32, 32) and part.padded == (12, 12, 36, 36)
    assert part.core_within_padded(4) == (16, 16, 80, 80)


@pytest.mark.parametrize("scale", [4, 3, 2])
def test_tiled_equals_untiled_when_the_pad_covers_the_receptive_field(scale):
    net = small_srvgg()
    image = picture(45, 31, "RGBA")
    whole = upscaling.upscale(net, image, scale=scale, tile=0, pad=10)
    tiled = upscaling.upscale(net, image, scale=scale, tile=12, pad=10)
    assert np.array_equal(np.asarray(whole), np.asarray(tiled))


def test_tiled_is_close_to_untiled_for_the_full_general_model(weights_dir):
    """Its 34 convolutions see further than the pad, so tiles differ slightly (as upstream's do)."""
    from nets.weights import load_model

    net = load_model(weights_dir, "realesr_general_x4v3")
    image = picture(48, 40)
    whole = np.asarray(upscaling.upscale(net, image, tile=0), dtype=float)
    tiled = np.asarray(upscaling.upscale(net, image, tile=16), dtype=float)
    assert np.abs(whole - tiled).mean() < 1.0
    assert np.percentile(np.abs(whole - tiled), 99) < 8


def test_the_net_never_sees_more_than_one_padded_tile_of_one_picture():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    pixels = torch.zeros(2, 3, 100, 70, dtype=torch.uint8)
    tiles = plan_tiles(70, 100, 32, 6)
    for _ in run_tiles(Spy(), pixels, tiles, Steps(len(tiles))):
        pass
    assert len(tiles) == 12 and len(seen) == 2 * 12  # colour and alpha, one after the other
    assert {n for n, *_ in seen} == {1}
    assert max(h for _, _, h, _ in seen) <= 32 + 2 * 6 and max(w for *_, w in seen) <= 32 + 2 * 6


def test_progress_counts_tiles():
    calls = []
    upscaling.upscale(small_srvgg(), picture(30, 20), tile=10, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 6) for done in range(1, 7)]


@pytest.mark.parametrize("size,multiple,minimum,padded", [
    ((13, 21), 8, 1, (16, 24)), ((16, 16), 8, 16, (16, 16)), ((3, 1), 4, 8, (8, 8)), ((5, 40), 1, 32, (32, 40)),
])
def test_pad_to_fit(size, multiple, minimum, padded):
    x = torch.arange(size[0] * size[1], dtype=torch.float32).reshape(1, 1, *size)
    out = pad_to_fit(x, multiple, minimum)
    assert tuple(out.shape[-2:]) == padded
    assert torch.equal(out[..., : size[0], : size[1]], x)  # the picture itself is untouched, top left
