"""Quality style transfer: Gatys, Ecker & Bethge (2016), optimising the pixels.

The picture is changed until its VGG19 features match the content's at
conv4_2 and the Gram matrices of its features match the style's at conv1_1 ..
conv5_1 (relu outputs). L-BFGS does the optimising. Starting from the fast
(AdaIN) result instead of the content or noise puts the start near the answer,
so a couple of hundred steps are enough.
"""
import logging
import math

import torch
from PIL import Image
from torch import nn

from nets import style_fast
from nets.arch.vgg import CONV_INDEX
from nets.device import image_to_tensor, join_alpha, model_placement, split_alpha, tensor_to_image
from nets.imageio import fit_within
from nets.steps import CancelFlag, Progress, Steps
from nets.tiling import pad_to_fit

log = logging.getLogger(__name__)

STYLE_LAYERS = tuple(CONV_INDEX[name] + 1 for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
CONTENT_LAYER = CONV_INDEX["conv4_2"] + 1
# VGG pools four times before conv5_1, whose reflection padding needs 2 pixels.
MIN_SIDE = 32

# The weights of jcjohnson/neural-style, tuned on the same Caffe VGG19 (the
# normalised VGG takes 0..1 but folds the x255 and mean into its first layer,
# so its features have Caffe's scale) with the same loss definitions: mean
# squared errors, Gram matrices divided by C*H*W. Clearly styled, content kept.
CONTENT_WEIGHT = 5.0
STYLE_WEIGHT = 100.0
# L-BFGS keeps this many past steps; each holds two copies of the picture.
HISTORY = 10
# VGG runs in float32 here on every device, the GPU included. The gradients are
# tiny by construction (Gram / (C*H*W), a mean, then / the starting loss): in
# float16 they underflow on the way back through VGG (at 1024x768 the style
# gradient at conv5_1 was exactly zero, at shallower layers mostly subnormal),
# and with a zero gradient L-BFGS stops at once and returns the fast result.
# bfloat16 has float32's range but an 8-bit mantissa, which blurs the values
# the line search compares; loss scaling would need a retry loop around
# L-BFGS's own evaluations. On Ampere and newer GPUs cuDNN runs float32
# convolutions on the tensor cores in TF32 (torch's default), which keeps the
# range and most of float16's speed.
OPTIMISE_DTYPE = torch.float32


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


class GatysLoss:
    """Content plus style loss of a picture (1x3xHxW, 0..1) against fixed targets.

    The losses are summed in float32 whatever VGG's dtype: Gram entries of
    deep layers would overflow float16. VGG itself should be float32 too
    (OPTIMISE_DTYPE): a float16 one loses the gradient on the way back.
    """

    def __init__(self, vgg: nn.Sequential, content: torch.Tensor, style: torch.Tensor, strength: float = 1.0):
        self.vgg = vgg
        _, self.dtype = model_placement(vgg)
        self.style_weight = STYLE_WEIGHT * strength
        with torch.no_grad():
            self.content_target = vgg_features(vgg, content, {CONTENT_LAYER})[CONTENT_LAYER].float()
            style_features = vgg_features(vgg, style, set(STYLE_LAYERS))
            self.style_targets = {i: gram(style_features[i].float()) for i in STYLE_LAYERS}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        features = vgg_features(self.vgg, x.to(self.dtype), {CONTENT_LAYER, *STYLE_LAYERS})
        loss = CONTENT_WEIGHT * (features[CONTENT_LAYER].float() - self.content_target).pow(2).mean()
        for index in STYLE_LAYERS:
            loss = loss + self.style_weight * (gram(features[index].float()) - self.style_targets[index]).pow(2).mean()
        return loss


def stylize_quality(vgg: nn.Sequential, decoder: nn.Sequential, content: Image.Image, style: Image.Image, *,
                    steps: int = 200, strength: float = 1.0, preserve_colors: bool = False,
                    progress: Progress | None = None, cancel: CancelFlag | None = None) -> Image.Image:
    """The content repainted in the style by `steps` L-BFGS steps from the AdaIN result.

    Same size as the content, alpha kept. Progress counts the fast start's
    steps, the style targets and then every L-BFGS step.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be within 0..1, not {strength}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, not {steps}")
    start_steps = style_fast.step_count(style_cached=False)
    total = start_steps + 1 + steps

    def start_progress(done: int, _: int) -> None:
        if progress is not None:
            progress(done, total)

    content_rgb, alpha = split_alpha(content)
    start = style_fast.stylize(vgg, decoder, content_rgb, style, strength=strength,
                               progress=start_progress, cancel=cancel)

    counter = Steps(total, progress, cancel, done=start_steps)
    counter.check()
    device, dtype = model_placement(vgg)
    # The style at the content's scale, so its brush strokes keep their size relative to the picture.
    style_rgb, _ = split_alpha(fit_within(style, max(content.size))[0])
    loss_of = GatysLoss(vgg, image_to_tensor(content_rgb, device, dtype),
                        image_to_tensor(style_rgb, device, dtype), strength)
    counter.advance()

    # The pixels themselves stay float32 even when VGG runs in float16: L-BFGS's
    # small late steps would vanish in float16's rounding.
    result = optimise(loss_of, image_to_tensor(start, device, torch.float32), steps, counter)
    if preserve_colors:
        result = style_fast.keep_colors(content_rgb, result)
    return join_alpha(result, alpha)


class _NotFinite(Exception):
    """The loss or its gradient stopped being a finite number."""


def optimise(loss_of: GatysLoss, start: torch.Tensor, steps: int, counter: Steps) -> Image.Image:
    """`steps` evaluations of L-BFGS on the pixels; each one is a step of
    progress, and a cancel is honoured before the next evaluation.

    The picture handed back is the best one evaluated (lowest loss). Should the
    loss or its gradient stop being finite (an overflow, a trial point far out),
    the optimisation stops there: NaN would spread to every pixel and give a
    black picture, where the best one so far is a good answer."""
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
    # The line search may end its last iteration a little before or after the
    # budget; the step count the caller was promised ends here either way.
    counter.advance(counter.total - counter.done)
    return tensor_to_image(best)
