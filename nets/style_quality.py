"""Quality style transfer: Gatys, Ecker & Bethge (2016), optimising the pixels.

The picture is changed until its VGG19 features match the content's at one
layer and the Gram matrices of its features match the style's at several
(relu outputs of the ImageNet VGG19, `vgg19_caffe`). L-BFGS does the
optimising, first on a smaller copy and then at full size (coarse to fine,
as Gatys et al. 2017 do for large pictures: the large shapes settle where a
step costs a quarter, and the full-size pass only refines). What is
optimised and how is a `Recipe`; the defaults were chosen by eye on real
photos and paintings (README, *💎 Quality mode, tuned*).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from nets import style_fast
from nets.arch.vgg import CONV_INDEX
from nets.device import image_to_tensor, join_alpha, model_placement, split_alpha, tensor_to_image
from nets.imageio import fit_within
from nets.steps import CancelFlag, Progress, Steps
from nets.tiling import pad_to_fit

log = logging.getLogger(__name__)

# VGG pools four times before conv5_1, whose reflection padding needs 2 pixels.
MIN_SIDE = 32
# L-BFGS keeps this many past steps; each holds two copies of the picture.
HISTORY = 10
# L-BFGS evaluations when the caller does not say (the CPU's default; README says how long they take).
DEFAULT_STEPS = 40
STARTS = ("fast", "content", "noise")


@dataclass(frozen=True)
class Recipe:
    """What quality mode optimises, and how.

    The losses are jcjohnson/neural-style's, on the same Caffe VGG19 and its
    scale: mean squared errors, Gram matrices divided by C*H*W, relu outputs.
    """

    content_layer: str = "conv4_2"
    # Gatys et al. add conv5_1; without it VGG stops at conv4_2, a step costs about a quarter less,
    # and the steps saved bought a lower loss than conv5_1's own term (README, *💎 Quality mode*).
    style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1")
    content_weight: float = 5.0
    style_weight: float = 100.0      # times strength
    tv_weight: float = 0.0           # total variation (mean squared neighbour difference, pixels in 0..1)
    start: str = "fast"              # fast: the picture the caller painted; content: the photo; noise
    coarse_scale: float | None = 0.5  # the first pass's side, as a share of the full one; None: one pass
    coarse_share: float = 0.6        # the share of the steps the first pass takes
    keep_detail: bool = True         # the fine pass starts with the start's own fine detail added back

    def passes(self, side: int, steps: int) -> list[tuple[float, int]]:
        """(scale, steps) of each pass; a coarse pass too small for VGG, or with no steps, is left out."""
        if self.coarse_scale is None or side * self.coarse_scale < 2 * MIN_SIDE:
            return [(1.0, steps)]
        coarse = round(steps * self.coarse_share)
        return [(self.coarse_scale, coarse), (1.0, steps - coarse)] if 0 < coarse < steps else [(1.0, steps)]


DEFAULT = Recipe()


def relative_cost(recipe: Recipe) -> float:
    """What a step costs on average against one at full size: a step's work grows with the pixels."""
    if recipe.coarse_scale is None:
        return 1.0
    return recipe.coarse_share * recipe.coarse_scale ** 2 + (1 - recipe.coarse_share)


def layer_index(name: str) -> int:
    """The Sequential index of a convolution's relu."""
    return CONV_INDEX[name] + 1


def gram(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations, divided by the feature map's size so layers and
    picture sizes weigh alike."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def vgg_features(vgg: nn.Sequential, x: torch.Tensor, layers: set[int]) -> dict[int, torch.Tensor]:
    """The outputs of the given VGG layers, stopping after the deepest one.

    A picture too small for conv5_1 is padded first (differentiably)."""
    x = pad_to_fit(x, 1, MIN_SIDE)
    wanted, last = {}, max(layers)
    for index, layer in enumerate(vgg):
        x = layer(x)
        if index in layers:
            wanted[index] = x
        if index == last:
            break
    return wanted


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


class GatysLoss:
    """Content plus style loss of a picture (1x3xHxW, 0..1) against fixed targets.

    The losses are summed in float32 whatever VGG's dtype (bfloat16 on a CPU
    that computes it natively): Gram entries of deep layers reach 1e6 and
    more, and a sum of them wants float32's mantissa.
    """

    def __init__(self, vgg: nn.Sequential, content: torch.Tensor, style: torch.Tensor, strength: float = 1.0,
                 recipe: Recipe = DEFAULT):
        self.vgg = vgg
        _, self.dtype = model_placement(vgg)
        self.recipe = recipe
        self.style_weight = recipe.style_weight * strength
        self.content_layer = layer_index(recipe.content_layer)
        self.style_layers = tuple(layer_index(name) for name in recipe.style_layers)
        with torch.no_grad():
            self.content_target = vgg_features(vgg, content.to(self.dtype),
                                               {self.content_layer})[self.content_layer].float()
            style_features = vgg_features(vgg, style.to(self.dtype), set(self.style_layers))
            self.style_targets = {i: gram(style_features[i].float()) for i in self.style_layers}

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The content and the style loss, unweighted (the style's summed over its layers)."""
        features = vgg_features(self.vgg, x.to(self.dtype), {self.content_layer, *self.style_layers})
        content = (features[self.content_layer].float() - self.content_target).pow(2).mean()
        style = sum((gram(features[i].float()) - self.style_targets[i]).pow(2).mean() for i in self.style_layers)
        return content, style

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        content, style = self.terms(x)
        loss = self.recipe.content_weight * content + self.style_weight * style
        if self.recipe.tv_weight:
            loss = loss + self.recipe.tv_weight * total_variation(x)
        return loss


PaintStart = Callable[[Image.Image, Progress], Image.Image]   # (content, progress) -> the fast result


def stylize_quality(vgg: nn.Sequential, content: Image.Image, style: Image.Image, *, steps: int = 100,
                    strength: float = 1.0, preserve_colors: bool = False, recipe: Recipe = DEFAULT,
                    paint_start: PaintStart | None = None, start_steps: int = 0,
                    progress: Progress | None = None, cancel: CancelFlag | None = None) -> Image.Image:
    """The content repainted in the style by `steps` L-BFGS evaluations in all.

    Same size as the content, alpha kept. With the recipe's start "fast",
    `paint_start` paints the start (reporting `start_steps` steps of
    progress); then each pass counts one step for its targets and one per
    evaluation.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be within 0..1, not {strength}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, not {steps}")
    if recipe.start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, not {recipe.start!r}")
    content_rgb, alpha = split_alpha(content)
    passes = recipe.passes(max(content_rgb.size), steps)
    fast = recipe.start == "fast" and paint_start is not None
    counter = Steps((start_steps if fast else 0) + sum(1 + n for _, n in passes), progress, cancel)
    device, dtype = model_placement(vgg)

    counter.check()
    if fast:
        start = image_to_tensor(paint_start(content_rgb, lambda done, _: counter.advance(done - counter.done)),
                                device, torch.float32)
    elif recipe.start == "noise":
        generator = torch.Generator().manual_seed(0)   # the same picture twice gives the same result
        noise = torch.rand(1, 3, content_rgb.height, content_rgb.width, generator=generator)
        start = (0.25 + 0.5 * noise).to(device)
    else:
        start = image_to_tensor(content_rgb, device, torch.float32)

    x = start
    for scale, count in passes:
        size = (max(1, round(content_rgb.width * scale)), max(1, round(content_rgb.height * scale)))
        pass_content = content_rgb.resize(size, Image.Resampling.LANCZOS) if scale != 1 else content_rgb
        # The style at the picture's scale, so its brush strokes keep their size relative to the picture.
        style_rgb, _ = split_alpha(fit_within(style, max(size))[0])
        counter.check()
        loss_of = GatysLoss(vgg, image_to_tensor(pass_content, device, dtype), image_to_tensor(style_rgb, device, dtype),
                            strength, recipe)
        counter.advance()
        x = resized(x, size, detail_of=start if recipe.keep_detail else None)
        # The pixels stay float32 whatever VGG runs in: L-BFGS's small late steps would vanish in
        # a 16-bit type's rounding.
        x = optimise(loss_of, x, count, counter)
    result = tensor_to_image(x)
    if preserve_colors:
        result = style_fast.keep_colors(content_rgb, result)
    return join_alpha(result, alpha)


def resized(x: torch.Tensor, size: tuple[int, int], detail_of: torch.Tensor | None = None) -> torch.Tensor:
    """x at size (width, height). Enlarged with `detail_of`, a picture at the full size, the detail
    that x lost at its size is taken from that picture (what separates it from its own copy at x's
    size): an enlarged coarse result is blurred, and a few fine steps would not sharpen it again."""
    height, width = x.shape[-2:]
    if (width, height) == size:
        return x
    shrinking = size[0] < width
    out = F.interpolate(x, size=(size[1], size[0]), mode="bicubic", align_corners=False, antialias=shrinking)
    if shrinking or detail_of is None:
        return out
    if tuple(detail_of.shape[-2:]) != (size[1], size[0]):
        detail_of = F.interpolate(detail_of, size=(size[1], size[0]), mode="bicubic", align_corners=False,
                                  antialias=size[0] < detail_of.shape[-1])
    small = F.interpolate(detail_of, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out + detail_of - F.interpolate(small, size=(size[1], size[0]), mode="bicubic", align_corners=False)


class _NotFinite(Exception):
    """The loss or its gradient stopped being a finite number."""


def optimise(loss_of: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int,
             counter: Steps) -> torch.Tensor:
    """`steps` evaluations of L-BFGS on the pixels; each one is a step of
    progress, and a cancel is honoured before the next evaluation.

    The picture handed back (1x3xHxW, float32, not clipped) is the best one
    evaluated (lowest loss). Should the loss or its gradient stop being
    finite (an overflow, a trial point far out), the optimisation stops
    there: NaN would spread to every pixel and give a black picture, where
    the best one so far is a good answer."""
    x = start.contiguous().clone().requires_grad_(True)
    # L-BFGS flattens the gradient with view(), which needs the default layout;
    # the channels-last VGG hands back a channels-last one.
    x.register_hook(lambda grad: grad.contiguous())
    # The strong Wolfe line search never accepts a step that raises the loss
    # (plain fixed steps overshoot badly when the start is far from the answer).
    # No tolerance stops it early: the caller's step count decides.
    optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=steps, max_eval=steps, history_size=HISTORY,
                                  tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    start_loss = None
    best = start.detach().clone()
    best_loss = float("inf")
    finish = min(counter.done + steps, counter.total)

    def closure() -> torch.Tensor:
        nonlocal start_loss, best_loss
        counter.check()
        loss = loss_of(x)
        # Measured against the starting loss, so the optimisation behaves the
        # same whatever the features' scale: torch's L-BFGS skips curvature
        # pairs with y.s < 1e-10, which would freeze it on small losses.
        if start_loss is None:
            start_loss = loss.detach().clamp_min(torch.finfo(torch.float32).tiny)
        loss = loss / start_loss
        (grad,) = torch.autograd.grad(loss, [x])  # only the pixels' gradient, none for VGG
        counter.advance()
        value = float(loss.detach())
        if not (math.isfinite(value) and torch.isfinite(grad).all()):
            raise _NotFinite(value)
        if value < best_loss:
            best_loss = value
            best.copy_(x.detach())
        x.grad = grad
        return loss

    if steps:
        try:
            optimizer.step(closure)
        except _NotFinite as exc:
            log.warning("quality mode stopped at step %d of %d: the loss became %s; keeping the best picture",
                        counter.done, counter.total, exc.args[0])
    # The line search may end its last iteration a little before the budget;
    # the step count the caller was promised ends here either way.
    counter.advance(finish - counter.done)
    return best
