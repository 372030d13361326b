"""Fast style transfer: AdaIN (Huang & Belongie 2017).

Encode content and style with the normalised VGG19 up to relu4_1, give the
content features the style's channel means and deviations, decode. One
forward pass, any style. A style's statistics are 2 x 512 numbers, so a
preset's are cached by name and its picture is never encoded again.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image
from torch import nn

from nets.arch.adain import feature_stats
from nets.arch.vgg import CONV_INDEX
from nets.device import image_to_tensor, join_alpha, model_placement, split_alpha, tensor_to_image
from nets.imageio import fit_within
from nets.steps import Progress, CancelFlag, Steps
from nets.tiling import pad_to_fit

RELU4_1 = CONV_INDEX["conv4_1"] + 1
# pytorch-AdaIN trains and tests with 512 px styles; the statistics barely
# change above that, and a huge painting would only cost encoder time.
STYLE_SIDE = 512
# VGG pools three times before relu4_1 and the decoder upsamples three times;
# relu4_1's reflection padding needs 2 pixels at that depth.
STRIDE = 8
MIN_SIDE = 2 * STRIDE


@dataclass(frozen=True)
class StyleStats:
    """Channel-wise mean and standard deviation of a style's relu4_1 features."""

    mean: torch.Tensor  # 1 x 512 x 1 x 1
    std: torch.Tensor


class StyleCache:
    """What a model keeps of the last `size` styles (AdaIN's statistics, the
    lite model's vector), by a stable key (a preset's id)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._stats: OrderedDict[str, object] = OrderedDict()

    def get(self, key: str):
        stats = self._stats.get(key)
        if stats is not None:
            self._stats.move_to_end(key)
        return stats

    def put(self, key: str, stats) -> None:
        self._stats[key] = stats
        self._stats.move_to_end(key)
        while len(self._stats) > self.size:
            self._stats.popitem(last=False)


def cached(cache: StyleCache | None, key: str | None):
    """What `cache` keeps under `key`; None without a cache, a key, or an entry."""
    return cache.get(key) if cache is not None and key else None


def computed_step(cache: StyleCache | None, key: str | None, steps: Steps, compute: Callable[[], object]):
    """`compute()` as one step of `steps`, kept in `cache` under `key` where both are given
    (a style's statistics here, a style vector in nets.style_lite)."""
    steps.check()
    value = compute()
    if cache is not None and key:
        cache.put(key, value)
    steps.advance()
    return value


def step_count(style_cached: bool, second_cached: bool = True) -> int:
    """Steps `stylize` reports: encode style (unless cached), a second painting (when mixing,
    unless cached), encode content, decode."""
    return 2 + (not style_cached) + (not second_cached)


def mixed(first: StyleStats, second: StyleStats, mix: float) -> StyleStats:
    """`mix` of the way from the first style's statistics to the second's: AdaIN's own
    interpolation of styles (the features it gives are the same blend of the two)."""
    return StyleStats((1 - mix) * first.mean + mix * second.mean, (1 - mix) * first.std + mix * second.std)


def encoder(vgg: nn.Sequential) -> nn.Sequential:
    """The normalised VGG19 up to relu4_1 (shares the layers, copies nothing)."""
    return vgg[: RELU4_1 + 1]


def style_stats(vgg: nn.Sequential, style: Image.Image) -> StyleStats:
    style_rgb, _ = split_alpha(fit_within(style, STYLE_SIDE)[0])
    device, dtype = model_placement(vgg)
    with torch.inference_mode():
        features = encoder(vgg)(pad_to_fit(image_to_tensor(style_rgb, device, dtype), 1, MIN_SIDE))
        mean, std = feature_stats(features.float())
    return StyleStats(mean, std)




def stylize(vgg: nn.Sequential, decoder: nn.Sequential, content: Image.Image, style: Image.Image, *,
            strength: float = 1.0, preserve_colors: bool = False, style_key: str | None = None,
            stats_cache: StyleCache | None = None, mix_with: Image.Image | None = None, mix: float = 0.5,
            mix_key: str | None = None, progress: Progress | None = None,
            cancel: CancelFlag | None = None) -> Image.Image:
    """The content painted in the style; same size as the content, alpha kept.

    strength 0..1 blends AdaIN's features with the content's own before
    decoding, as the paper's alpha. preserve_colors keeps the content's colours
    and takes only the stylised luminance. mix_with: a second painting, `mix`
    of the way to it (mix_key caches it like style_key).
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be within 0..1, not {strength}")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be within 0..1, not {mix}")
    stats = cached(stats_cache, style_key)
    second = cached(stats_cache, mix_key) if mix_with is not None else None
    steps = Steps(step_count(stats is not None, mix_with is None or second is not None), progress, cancel)
    if stats is None:
        stats = computed_step(stats_cache, style_key, steps, lambda: style_stats(vgg, style))
    if mix_with is not None:
        if second is None:
            second = computed_step(stats_cache, mix_key, steps, lambda: style_stats(vgg, mix_with))
        stats = mixed(stats, second, mix)

    content_rgb, alpha = split_alpha(content)
    device, dtype = model_placement(vgg)
    x = image_to_tensor(content_rgb, device, dtype)
    height, width = x.shape[-2:]
    with torch.inference_mode():
        steps.check()
        content_features = encoder(vgg)(pad_to_fit(x, STRIDE, MIN_SIDE)).float()
        steps.advance()

        steps.check()
        c_mean, c_std = feature_stats(content_features)
        styled = (content_features - c_mean) / c_std * stats.std + stats.mean
        blended = strength * styled + (1 - strength) * content_features
        out = decoder(blended.to(dtype))[..., :height, :width]
        steps.advance()

    result = tensor_to_image(out)
    if preserve_colors:
        result = keep_colors(content_rgb, result)
    return join_alpha(result, alpha)


def keep_colors(content: Image.Image, styled: Image.Image) -> Image.Image:
    """The styled picture's luminance with the content's chroma (YCbCr).

    Luminance transfer keeps the content's hues exactly, where histogram
    matching the style to the content only approximates them.
    """
    luma = styled.convert("YCbCr").getchannel("Y")
    _, cb, cr = content.convert("RGB").convert("YCbCr").split()
    return Image.merge("YCbCr", (luma, cb, cr)).convert("RGB")
