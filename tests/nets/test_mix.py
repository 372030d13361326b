"""Two paintings mixed: the fast networks' style representations interpolate.

At a mix of 0 the result is the first painting alone and at 1 the second
alone, to the bit; between them the lite network paints with the line
between the two style vectors, AdaIN with the line between the statistics.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from nets import sheet, style_fast, style_lite
from nets.engine import Engine
from tests.nets.test_lite import content_picture, style_picture

FIRST = style_picture(seed=21, size=96, palette=[(20, 30, 90), (240, 200, 60), (250, 250, 240)])
SECOND = style_picture(seed=22, size=80, palette=[(120, 20, 20), (30, 160, 70), (10, 10, 10)])
CONTENT = content_picture(96, 72)


@pytest.fixture(scope="module")
def engine(weights_dir) -> Engine:
    return Engine(weights_dir, device="cpu", threads=1, precision="fp32")


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


@pytest.mark.parametrize("model", ["lite", "adain"])
def test_mixing_at_0_and_1_is_each_painting_alone(engine, model):
    first = engine.stylize(CONTENT, FIRST, model=model).image
    second = engine.stylize(CONTENT, SECOND, model=model).image
    at_0 = engine.stylize(CONTENT, FIRST, model=model, mix_with=SECOND, mix=0).image
    at_1 = engine.stylize(CONTENT, FIRST, model=model, mix_with=SECOND, mix=1).image
    assert at_0.tobytes() == first.tobytes()
    assert at_1.tobytes() == second.tobytes()


def test_a_half_mix_lies_between_the_two(engine):
    """On the real lite weights (AdaIN's synthetic decoder paints every style alike)."""
    first, second = (pixels(engine.stylize(CONTENT, s, model="lite").image) for s in (FIRST, SECOND))
    half = pixels(engine.stylize(CONTENT, FIRST, model="lite", mix_with=SECOND, mix=0.5).image)
    assert np.abs(first - second).mean() > 10
    assert np.abs(half - first).mean() > 3 and np.abs(half - second).mean() > 3


def test_lite_paints_with_the_line_between_the_two_vectors(engine, monkeypatch):
    used = []
    paint = style_lite.paint
    monkeypatch.setattr(style_lite, "paint", lambda t, picture, v: used.append(v) or paint(t, picture, v))
    engine.stylize(CONTENT, FIRST, model="lite", mix_with=SECOND, mix=0.25)
    predictor = engine.models.get("lite_style_predict")
    a, b = style_lite.style_vector(predictor, FIRST), style_lite.style_vector(predictor, SECOND)
    assert torch.allclose(used[-1], 0.75 * a + 0.25 * b, atol=1e-6)


def test_adain_decodes_the_same_blend_of_the_two_styles_features(engine):
    vgg, decoder = engine.models.get("vgg19_normalised"), engine.models.get("adain_decoder")
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, features):
            seen.append(features)
            return decoder(features)

    for mix in (0, 1, 0.25):
        style_fast.stylize(vgg, Recording(), CONTENT, FIRST, mix_with=SECOND, mix=mix)
    at_0, at_1, quarter = seen
    assert torch.allclose(quarter, 0.75 * at_0 + 0.25 * at_1, atol=1e-4)
    assert not torch.allclose(at_0, at_1)


def test_adain_mixes_the_statistics():
    a = style_fast.StyleStats(torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))
    b = style_fast.StyleStats(torch.full((1, 4, 1, 1), 2.0), torch.full((1, 4, 1, 1), 3.0))
    mixed = style_fast.mixed(a, b, 0.25)
    assert torch.allclose(mixed.mean, torch.full((1, 4, 1, 1), 0.5))
    assert torch.allclose(mixed.std, torch.full((1, 4, 1, 1), 1.5))


@pytest.mark.parametrize("model", ["lite", "adain"])
def test_a_cached_second_painting_is_not_looked_at_again(engine, model):
    engine.stylize(CONTENT, FIRST, model=model, style_key=f"mix-a-{model}", mix_with=SECOND, mix=0.5,
                   mix_key=f"mix-b-{model}")
    totals = []
    engine.stylize(CONTENT, FIRST, model=model, style_key=f"mix-a-{model}", mix_with=SECOND, mix=0.5,
                   mix_key=f"mix-b-{model}", progress=lambda done, total: totals.append(total))
    assert set(totals) == {1 if model == "lite" else 2}   # neither painting's style was computed again


def test_a_mix_out_of_range_is_refused(engine):
    with pytest.raises(ValueError):
        engine.stylize(CONTENT, FIRST, mix_with=SECOND, mix=1.5)


def test_a_sheet_of_mixes_is_one_tile_per_share(engine):
    shares = (0.25, 0.5, 0.75)
    result = engine.preview_sheet(CONTENT, [FIRST], labels=[f"{round(s * 100)}%" for s in shares], model="lite",
                                  mix_with=SECOND, mixes=shares)
    small = CONTENT   # smaller than a tile already, so painted as it is
    tile_w, tile_h = small.size
    left = sheet.GAP + tile_w + sheet.GAP   # the second tile: row 1, column 2
    tile = result.image.crop((left, sheet.GAP, left + tile_w, sheet.GAP + tile_h))
    expected = engine.stylize(small, FIRST, model="lite", mix_with=SECOND, mix=0.5).image
    assert tile.tobytes() == expected.tobytes()


def test_a_sheet_of_mixes_needs_one_style_and_a_label_per_share(engine):
    with pytest.raises(ValueError):
        engine.preview_sheet(CONTENT, [FIRST, SECOND], labels=["a", "b"], mix_with=SECOND, mixes=[0.5, 0.7])
    with pytest.raises(ValueError):
        engine.preview_sheet(CONTENT, [FIRST], labels=["a"], mix_with=SECOND, mixes=[0.25, 0.5])
