"""The Engine and its four ops, on synthetic weights and tiny pictures.

Synthetic weights make every output look like noise, so these tests check
behaviour (sizes, modes, progress, cancel, determinism, the arithmetic of
blends and colour keeping), not beauty; test_real_esrgan.py looks at quality.
"""
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from nets import style_fast, style_lite, style_quality, upscale as upscaling
from nets.arch.adain import feature_stats
from nets.device import image_to_tensor
from nets.engine import Engine, Result
from nets.errors import Cancelled
from nets.imageio import fit_within


def picture(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A smooth colour gradient with some noise: structure for the nets to see."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 1 - x / max(width - 1, 1)], axis=2) * 200
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    if mode in ("LA", "RGBA"):
        # a soft-edged disc, so the alpha really varies
        alpha = (np.hypot(x - width / 2, y - height / 2) < min(width, height) / 3) * 255
        img = img.convert(mode[:-1])
        img.putalpha(Image.fromarray(alpha.astype(np.uint8)))
        return img
    return img.convert(mode)


@pytest.fixture(scope="module")
def engine(weights_dir) -> Engine:
    return Engine(weights_dir, device="cpu", threads=1, precision="fp32")  # exact arithmetic; bf16: test_precision.py


CONTENT = picture(72, 48)  # 3:2, and 72 is no multiple of 16: padding matters
STYLE = picture(40, 56, seed=1)

# name -> (call, expected output size for CONTENT)
OPS = {
    "stylize": (lambda e, img, **kw: e.stylize(img, STYLE, **kw), (72, 48)),   # lite: the CPU's default
    "stylize_adain": (lambda e, img, **kw: e.stylize(img, STYLE, model="adain", **kw), (72, 48)),
    "stylize_quality": (lambda e, img, **kw: e.stylize_quality(img, STYLE, steps=3, **kw), (72, 48)),
    "translate": (lambda e, img, **kw: e.translate(img, "vangogh", **kw), (72, 48)),
    "upscale": (lambda e, img, **kw: e.upscale(img, tile=24, **kw), (288, 192)),
}


@pytest.mark.parametrize("op", OPS)
def test_op_keeps_aspect_ratio_and_returns_8bit_rgb(engine, op):
    call, size = OPS[op]
    result = call(engine, CONTENT)
    assert isinstance(result, Result)
    assert result.image.size == size
    assert result.image.mode == "RGB"
    assert np.asarray(result.image).dtype == np.uint8
    assert not result.downsized
    assert result.seconds > 0


@pytest.mark.parametrize("op", OPS)
def test_op_is_deterministic(engine, op):
    call, _ = OPS[op]
    first, second = call(engine, CONTENT).image, call(engine, CONTENT).image
    assert np.array_equal(np.asarray(first), np.asarray(second))


@pytest.mark.parametrize("op", OPS)
def test_op_reports_monotone_progress_to_the_end(engine, op):
    call, _ = OPS[op]
    calls = []
    call(engine, CONTENT, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 2
    totals = {total for _, total in calls}
    assert len(totals) == 1
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] >= 1
    assert done[-1] == calls[-1][1]


@pytest.mark.parametrize("op", OPS)
def test_op_stops_within_one_step_of_cancel(engine, op):
    call, _ = OPS[op]
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        call(engine, CONTENT, progress=progress, cancel=cancel)
    assert calls == [1]  # nothing was done after the step during which cancel came


@pytest.mark.parametrize("op", ["stylize", "stylize_adain", "stylize_quality", "translate"])
def test_style_ops_keep_alpha(engine, op):
    call, _ = OPS[op]
    content = picture(40, 32, "RGBA")
    result = call(engine, content).image
    assert result.mode == "RGBA"
    assert result.getchannel("A").tobytes() == content.getchannel("A").tobytes()


@pytest.mark.parametrize("size", [(37, 53), (1, 9), (200, 9)])
def test_style_and_translate_take_any_size(engine, size):
    content = picture(*size)
    for model in ("lite", "adain"):
        assert engine.stylize(content, STYLE, model=model).image.size == size
        assert engine.stylize(content, picture(3, 2), model=model).image.size == size
    assert engine.stylize_quality(content, STYLE, steps=1).image.size == size
    assert engine.translate(content, "summer2winter").image.size == size


def test_max_side_downsizes_first_and_says_so(engine):
    big = picture(96, 64)
    result = engine.stylize(big, STYLE, max_side=48)
    assert result.downsized and result.image.size == (48, 32)
    upscaled = engine.upscale(big, max_side=48)
    assert upscaled.downsized and upscaled.image.size == (192, 128)
    assert not engine.translate(big, "monet", max_side=96).downsized


def test_engine_default_max_side_applies(weights_dir):
    small_engine = Engine(weights_dir, device="cpu", max_side=32)
    result = small_engine.translate(picture(64, 48), "cezanne")
    assert result.downsized and result.image.size == (32, 24)


def test_unknown_choices_fail_before_any_work(engine):
    with pytest.raises(ValueError):
        engine.translate(CONTENT, "picasso")
    with pytest.raises(ValueError):
        engine.upscale(CONTENT, model="x8")
    with pytest.raises(ValueError):
        engine.upscale(CONTENT, scale=5)
    with pytest.raises(ValueError):
        engine.stylize(CONTENT, STYLE, strength=1.5)
    with pytest.raises(ValueError):
        engine.stylize(CONTENT, STYLE, model="picasso")


# --- fast style -----------------------------------------------------------------

def test_stylize_strength_blends_adain_with_content_features(engine):
    """The paper's alpha: the decoder gets strength * AdaIN(c, s) + (1 - strength) * c."""
    vgg, decoder = engine.models.get("vgg19_normalised"), engine.models.get("adain_decoder")
    seen = {}

    class RecordingDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = decoder

        def forward(self, features):
            seen["features"] = features
            return self.inner(features)

    for strength in (0, 0.25, 1):
        style_fast.stylize(vgg, RecordingDecoder(), CONTENT, STYLE, strength=strength)
        seen[strength] = seen.pop("features")
    target = style_fast.style_stats(vgg, STYLE)
    mean, std = (t.flatten() for t in feature_stats(seen[1]))
    assert torch.allclose(mean, target.mean.flatten(), atol=1e-3)
    assert torch.allclose(std, target.std.flatten(), rtol=1e-3, atol=1e-3)
    assert torch.allclose(seen[0.25], 0.25 * seen[1] + 0.75 * seen[0], atol=1e-4)
    assert not torch.allclose(seen[0], seen[1])


def test_stylize_caches_style_statistics_by_key(engine):
    plain = engine.stylize(CONTENT, STYLE, model="adain").image
    engine.stylize(CONTENT, STYLE, model="adain", style_key="test-preset")
    calls = []
    # A different picture under the same key: the cached statistics win, so the key really is used.
    cached = engine.stylize(CONTENT, picture(30, 30, seed=9), model="adain", style_key="test-preset",
                            progress=lambda done, total: calls.append(total)).image
    assert calls == [2, 2]  # the style half of the encoder was skipped
    assert np.array_equal(np.asarray(plain), np.asarray(cached))


def test_stylize_downsizes_a_large_style(engine):
    vgg = engine.models.get("vgg19_normalised")
    large = picture(1200, 300, seed=3)
    stats = style_fast.style_stats(vgg, large)
    shrunk = style_fast.style_stats(vgg, fit_within(large, style_fast.STYLE_SIDE)[0])
    assert torch.allclose(stats.mean, shrunk.mean) and torch.allclose(stats.std, shrunk.std)


def test_keep_colors_takes_styled_luma_and_content_chroma():
    styled = Image.fromarray(np.random.default_rng(5).integers(90, 170, (48, 72, 3), dtype=np.uint8))
    kept = style_fast.keep_colors(CONTENT, styled)
    ycbcr = lambda img: np.asarray(img.convert("YCbCr"), dtype=float)  # noqa: E731
    # back in RGB, rounding (and rare clipping) moves YCbCr values by a level or two
    assert np.abs(ycbcr(kept)[..., 0] - ycbcr(styled)[..., 0]).mean() < 2
    assert np.abs(ycbcr(kept)[..., 1:] - ycbcr(CONTENT)[..., 1:]).mean() < 2
    assert np.abs(ycbcr(styled)[..., 1:] - ycbcr(CONTENT)[..., 1:]).mean() > 10


@pytest.mark.parametrize("op", ["stylize", "stylize_adain", "stylize_quality"])
def test_preserve_colors_keeps_the_content_colours(engine, op):
    call, _ = OPS[op]
    plain = call(engine, CONTENT).image
    kept = call(engine, CONTENT, preserve_colors=True).image
    assert kept.tobytes() == style_fast.keep_colors(CONTENT, plain).tobytes()


# --- quality style --------------------------------------------------------------

def test_quality_lowers_the_gatys_loss_from_the_fast_start(engine):
    """The mechanism, on whatever weights the tests have; test_quality.py judges the real VGG19's result."""
    vgg = engine.models.get("vgg19_caffe")
    content, style = picture(48, 40), picture(48, 40, seed=1)
    fast = engine.stylize(content, style, model="lite").image
    quality = engine.stylize_quality(content, style, steps=8).image
    loss_of = style_quality.GatysLoss(vgg, image_to_tensor(content, torch.device("cpu"), torch.float32),
                                      image_to_tensor(style, torch.device("cpu"), torch.float32))
    with torch.no_grad():
        start = loss_of(image_to_tensor(fast, torch.device("cpu"), torch.float32)).item()
        end = loss_of(image_to_tensor(quality, torch.device("cpu"), torch.float32)).item()
    assert end < 0.8 * start


def test_quality_progress_counts_start_targets_and_every_step(engine):
    calls = []
    engine.stylize_quality(CONTENT, STYLE, steps=4, progress=lambda done, total: calls.append((done, total)))
    start = style_lite.step_count(style_cached=False, strength=1.0)
    assert calls == [(done, start + 1 + 4) for done in range(1, start + 1 + 4 + 1)]


def test_quality_goes_coarse_to_fine_on_a_large_picture(engine, monkeypatch):
    sizes = []
    optimise = style_quality.optimise
    monkeypatch.setattr(style_quality, "optimise", lambda loss_of, x, steps, counter: sizes.append(
        (tuple(x.shape[-2:]), steps)) or optimise(loss_of, x, steps, counter))
    calls = []
    result = engine.stylize_quality(picture(160, 120), STYLE, steps=10,
                                    progress=lambda done, total: calls.append((done, total)))
    coarse = round(10 * style_quality.DEFAULT.coarse_share)
    assert sizes == [((60, 80), coarse), ((120, 160), 10 - coarse)]
    assert result.image.size == (160, 120)
    assert calls[-1][0] == calls[-1][1] == style_lite.step_count(False, 1.0) + 2 + 10


@pytest.mark.parametrize("start", style_quality.STARTS)
def test_every_start_gives_a_picture_of_the_contents_size(engine, start):
    vgg = engine.models.get("vgg19_caffe")
    recipe = style_quality.Recipe(start=start, tv_weight=1.0)
    result = style_quality.stylize_quality(vgg, CONTENT, STYLE, steps=2, recipe=recipe,
                                           paint_start=lambda picture, progress: picture)
    assert result.size == CONTENT.size


def test_gram_is_normalised_by_size():
    features = torch.ones(1, 4, 6, 5)
    assert torch.allclose(style_quality.gram(features), torch.full((1, 4, 4), 1 / 4))


# --- upscale --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_upscale_keeps_the_mode(engine, mode):
    result = engine.upscale(picture(20, 16, mode), tile=0).image
    assert result.mode == mode and result.size == (80, 64)


def test_upscale_opaque_alpha_stays_opaque(engine):
    opaque = picture(20, 16).convert("RGBA")
    alpha = engine.upscale(opaque).image.getchannel("A")
    assert alpha.getextrema() == (255, 255)


def test_upscale_alpha_goes_through_the_network(engine):
    content = picture(20, 16, "RGBA")
    net = engine.models.get("realesr_general_x4v3")
    result = upscaling.upscale(net, content, tile=0)
    alpha_as_picture = Image.merge("RGB", [content.getchannel("A")] * 3)
    expected = upscaling.upscale(net, alpha_as_picture, tile=0).convert("L")
    assert result.getchannel("A").tobytes() == expected.tobytes()


def test_upscale_grey_is_the_luma_of_the_colour_result(engine):
    grey = picture(20, 16, "L")
    net = engine.models.get("realesr_general_x4v3")
    colour = upscaling.upscale(net, grey.convert("RGB"), tile=0)
    assert upscaling.upscale(net, grey, tile=0).tobytes() == colour.convert("L").tobytes()


@pytest.mark.parametrize("scale", [2, 3])
def test_upscale_x2_and_x3_are_lanczos_of_x4(engine, scale):
    content = picture(24, 20)
    x4 = engine.upscale(content, scale=4, tile=0).image
    smaller = engine.upscale(content, scale=scale, tile=0).image
    assert smaller.size == (24 * scale, 20 * scale)
    assert smaller.tobytes() == x4.resize(smaller.size, Image.Resampling.LANCZOS).tobytes()


def test_denoise_blends_general_with_its_weak_denoise_twin(engine):
    general = engine.models.get("realesr_general_x4v3")
    weak = engine.models.get("realesr_general_wdn_x4v3")
    blended = upscaling.blend_denoise(general, weak, 0.3)
    for key, value in blended.state_dict().items():
        expected = 0.3 * general.state_dict()[key] + 0.7 * weak.state_dict()[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    content = picture(16, 12)
    by_engine = engine.upscale(content, model="general", denoise=0.3, tile=0).image
    assert by_engine.tobytes() == upscaling.upscale(blended, content, tile=0).tobytes()
    assert engine.upscale(content, model="general", denoise=1, tile=0).image.tobytes() == \
        upscaling.upscale(general, content, tile=0).tobytes()
    assert engine.upscale(content, model="general", denoise=0, tile=0).image.tobytes() == \
        upscaling.upscale(weak, content, tile=0).tobytes()


def test_auto_model_is_general_on_cpu_and_x4plus_on_cuda():
    assert upscaling.model_name("auto", torch.device("cpu")) == "realesr_general_x4v3"
    assert upscaling.model_name("auto", torch.device("cuda")) == "realesrgan_x4plus"
    assert upscaling.model_name("anime", torch.device("cpu")) == "realesrgan_x4plus_anime_6b"


def test_anime_model_upscales(engine):
    result = engine.upscale(picture(16, 12), model="anime", tile=0).image
    assert result.size == (64, 48) and result.mode == "RGB"
