"""Quality mode keeps its gradient and never hands back a black picture.

CUDA ran VGG in float16 for quality mode; the gradient underflowed on its way
back. Float16 works the same on a CPU, so the mechanism is shown here at small sizes.
"""
import dataclasses
import logging

import torch
from PIL import Image

from nets import style_quality
from nets.engine import QUALITY_VGG, Engine
from nets.steps import Steps
from nets.weights import load_model

# Gatys et al.'s style layers, conv5_1 the deepest: the one whose gradient float16 lost on CUDA (the
# default recipe now stops at conv4_1, but a recipe may ask for conv5_1 again).
GATYS = dataclasses.replace(style_quality.DEFAULT, style_layers=style_quality.DEFAULT.style_layers + ("conv5_1",))
DEEPEST_STYLE_LAYER = style_quality.layer_index("conv5_1")


def deepest_style_gradient(vgg, dtype: torch.dtype) -> torch.Tensor:
    """The pixels' gradient from the conv5_1 style term, scaled by the starting loss as quality mode does."""
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64)
    loss_of = style_quality.GatysLoss(vgg, content.to(dtype), style.to(dtype), recipe=GATYS)
    x = (0.7 * content + 0.3 * style).requires_grad_(True)
    start_loss = loss_of(x).detach()
    features = style_quality.vgg_features(vgg, x.to(dtype), {DEEPEST_STYLE_LAYER})[DEEPEST_STYLE_LAYER]
    term = loss_of.style_weight * (style_quality.gram(features.float())
                                   - loss_of.style_targets[DEEPEST_STYLE_LAYER]).pow(2).mean()
    (grad,) = torch.autograd.grad(term / start_loss, [x])
    return grad


def test_a_float16_vgg_loses_the_deep_style_gradient_and_quality_modes_dtypes_keep_it(weights_dir):
    lost = deepest_style_gradient(load_model(weights_dir, QUALITY_VGG, "cpu", torch.float16), torch.float16)
    assert (lost == 0).all()      # the old CUDA path: conv5_1 taught the picture nothing
    for dtype in (torch.float32, torch.bfloat16):   # fp32 everywhere, bf16 on a CPU that computes it natively
        kept = deepest_style_gradient(load_model(weights_dir, QUALITY_VGG, "cpu", dtype), dtype)
        assert (kept != 0).float().mean() > 0.9, dtype


def test_the_engine_runs_quality_mode_in_float32_on_cuda_whatever_its_own_dtype(weights_dir, monkeypatch):
    engine = Engine(weights_dir, device="cpu", max_side=32, threads=1)
    engine.models.dtype = engine.dtype = torch.float16    # what a CUDA engine holds
    engine.quality_precision = "tf32"                     # what nets.precision.for_quality gives on Ampere
    seen = {}

    def capture(vgg, content, style, **_):
        seen["vgg"] = next(vgg.parameters()).dtype
        return content

    monkeypatch.setattr(style_quality, "stylize_quality", capture)
    result = engine.stylize_quality(Image.new("RGB", (32, 24)), Image.new("RGB", (32, 24)), steps=1)
    assert seen == {"vgg": torch.float32} and result.precision == "tf32"


class NaNAfter:
    """A loss that behaves, then turns NaN at evaluation `bad` (an overflow, say)."""

    def __init__(self, target: torch.Tensor, bad: int):
        self.target, self.bad, self.calls = target, bad, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = (x - self.target).pow(2).sum()
        return loss * float("nan") if self.calls >= self.bad else loss


def test_a_nan_loss_stops_with_the_best_picture_not_a_black_one(caplog):
    target = torch.full((1, 3, 8, 8), 0.8)
    start = torch.full((1, 3, 8, 8), 0.2)
    loss_of = NaNAfter(target, bad=4)
    with caplog.at_level(logging.WARNING, logger="nets.style_quality"):
        result = style_quality.optimise(loss_of, start, steps=20, counter=Steps(20))
    pixels = result.numpy()
    assert loss_of.calls == 4                           # it stopped at the NaN
    assert pixels.min() > 0.2                           # better than the start, and not black
    assert "loss became nan" in caplog.text


def test_a_nan_at_the_first_step_gives_the_start_back():
    start = torch.full((1, 3, 8, 8), 0.5)
    result = style_quality.optimise(NaNAfter(start, bad=1), start, steps=5, counter=Steps(5))
    assert torch.equal(result, start)
