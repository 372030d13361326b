"""The compare sheet and the before/after crop: where they look, what they show, at which size."""
import threading

import numpy as np
import pytest
from PIL import Image

from nets import compare, upscale as upscaling
from nets.engine import Engine
from nets.errors import Cancelled


def flat_with_texture(size=(120, 80), box=(72, 24, 104, 56), seed=0) -> Image.Image:
    """A flat grey picture with one square of noise: the only place with detail."""
    pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = np.random.default_rng(seed).integers(0, 256, (bottom - top, right - left, 3))
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def engine(weights_dir) -> Engine:
    return Engine(weights_dir, device="cpu", threads=1, precision="fp32")


def test_detail_box_finds_the_textured_square():
    assert compare.detail_box(flat_with_texture(), 32) == (72, 24, 104, 56)
    # a picture smaller than the side: all of it, whatever its shape
    assert compare.detail_box(flat_with_texture((20, 12), (0, 0, 4, 4)), 32) == (0, 0, 20, 12)
    # the far edges are tried too, not only the grid's steps
    assert compare.detail_box(flat_with_texture((100, 60), (67, 27, 100, 60)), 33) == (67, 27, 100, 60)


def test_detail_part_keeps_the_context_an_upscaler_tile_gets():
    part = compare.detail_part(flat_with_texture(), 32, 10)
    assert part.size == (52, 52)
    assert compare.detail_part(flat_with_texture(), 32, 30).size == (78, 80), "kept within the picture"


def test_before_after_is_the_same_region_at_the_results_pixels():
    original = flat_with_texture()
    result = original.resize((360, 240), Image.Resampling.BICUBIC)   # any factor: x3 here
    sheet = compare.before_after(original, result, side=96, labels=("before", "after"))
    top, left = compare.GAP + compare.LABEL_HEIGHT, compare.GAP
    assert sheet.size == (2 * 96 + 3 * compare.GAP, 96 + compare.LABEL_HEIGHT + 2 * compare.GAP)
    before = np.asarray(sheet)[top:top + 96, left:left + 96]
    after = np.asarray(sheet)[top:top + 96, 2 * left + 96:2 * left + 192]
    assert (before == np.asarray(original.crop((72, 24, 104, 56)).resize((96, 96), Image.Resampling.NEAREST))).all()
    assert (after == np.asarray(result.crop((216, 72, 312, 168)))).all()


def test_upscale_region_is_the_tile_of_a_tiled_upscale(engine):
    net = engine.models.get("realesr_general_x4v3")
    picture = flat_with_texture((48, 40), (8, 8, 40, 32))
    for scale in (2, 3, 4):
        tiled = upscaling.upscale(net, picture, scale=scale, tile=16)
        region = upscaling.upscale_region(net, picture, (16, 16, 32, 32), scale=scale)
        assert region.tobytes() == tiled.crop((16 * scale, 16 * scale, 32 * scale, 32 * scale)).tobytes()


def test_compare_sheet_shows_the_detailed_region_as_each_model_makes_it(engine):
    picture = flat_with_texture()
    progress = []
    result = engine.upscale_compare(picture, scale=2, denoise=1, side=32, labels=["a", "b", "c"],
                                    progress=lambda done, total: progress.append((done, total)))
    panel, gap, label = 64, compare.GAP, compare.LABEL_HEIGHT
    assert result.image.size == (2 * panel + 3 * gap, 2 * (panel + label) + 3 * gap)
    assert progress[-1] == (3, 3)
    sheet = np.asarray(result.image)
    original = sheet[gap + label:gap + label + panel, gap:gap + panel]
    expected = picture.crop((72, 24, 104, 56)).resize((panel, panel), Image.Resampling.NEAREST)
    assert (original == np.asarray(expected)).all(), "the original's pixels, enlarged without smoothing"
    general = sheet[gap + label:gap + label + panel, 2 * gap + panel:2 * gap + 2 * panel]
    full = engine.upscale(picture, model="general", scale=2, denoise=1, tile=0).image
    assert np.abs(general.astype(float) - np.asarray(full.crop((144, 48, 208, 112)), float)).mean() < 3, \
        "the general panel is that part of the full result"


def test_compare_sheet_checks_its_models_and_stops_on_cancel(engine):
    with pytest.raises(ValueError):
        engine.upscale_compare(flat_with_texture(), models=["general", "x8"])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.upscale_compare(flat_with_texture(), side=16, cancel=cancel)
