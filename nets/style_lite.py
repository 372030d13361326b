"""Fast style transfer, lite: Magenta's arbitrary-style networks (Ghiasi et al. 2017).

The style predictor turns the style picture into 100 numbers; the small
transfer network paints the content with them in one pass. Both together
hold 2.5 M parameters (AdaIN's VGG and decoder: 10 M), which makes this the
mode for CPUs. A style vector is 100 numbers, so a preset's is cached by name
and its painting is never looked at again.

Strength is Magenta's: the style vector is interpolated with the content's own
vector, so 0 gives the network's rendering of the photo in its own style and
1 the full style, with the strokes of the network at every strength. Two
paintings mix the same way (Magenta's own demo does it): `mix` of the way
from the first painting's vector to the second's.
"""
from __future__ import annotations

import torch
from PIL import Image, ImageOps

from nets.arch.arbitrary_style import StylePredictor, StyleTransformer
from nets.device import image_to_tensor, join_alpha, model_placement, split_alpha, tensor_to_image
from nets.imageio import fit_within
from nets.steps import CancelFlag, Progress, Steps
from nets.style_fast import StyleCache, cached, computed_step, keep_colors
from nets.tiling import pad_to_fit

# The predictor was trained on 256 x 256 styles; a square from the middle of
# the painting keeps its strokes undistorted.
STYLE_SIDE = 256
# The transfer network was trained on 256 px content, and its strokes keep
# their size in pixels: on a 1024 px photo they shrink to a fine crosshatch.
# Painted at this side and enlarged, the strokes stay visible at any photo
# size. Chosen by eye on 1024 px photos: at 512 the strokes were boldest but
# edges went soft once enlarged; at 768 and above the painting turned into
# texture; 640 kept both (README shows the comparison).
WORKING_SIDE = 640
# Reflection padding of the 9x9 layers needs 5 pixels, at a quarter that 2.
MIN_SIDE = 4 * StyleTransformer.stride


def step_count(style_cached: bool, strength: float, second_cached: bool = True) -> int:
    """Steps `stylize` reports: the style's vector (unless cached), a second painting's (when
    mixing, unless cached), the content's (below full strength), the painting."""
    return 1 + (not style_cached) + (not second_cached) + (strength < 1)


def mixed(first: torch.Tensor, second: torch.Tensor, mix: float) -> torch.Tensor:
    """`mix` of the way from the first style to the second (0: the first, exactly; 1: the second)."""
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be within 0..1, not {mix}")
    return (1 - mix) * first + mix * second


def style_vector(predictor: StylePredictor, picture: Image.Image) -> torch.Tensor:
    """A picture's style as 1 x 100 float32."""
    rgb, _ = split_alpha(picture)
    side = min(rgb.size)
    square = ImageOps.fit(rgb, (side, side), Image.Resampling.BICUBIC)  # the centre, no resampling yet
    square = square.resize((STYLE_SIDE, STYLE_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    device, dtype = model_placement(predictor)
    with torch.inference_mode():
        return predictor(image_to_tensor(square, device, dtype)).float()


def stylize(predictor: StylePredictor, transformer: StyleTransformer, content: Image.Image, style: Image.Image,
            *, strength: float = 1.0, preserve_colors: bool = False, style_key: str | None = None,
            vectors: StyleCache | None = None, working_side: int | None = WORKING_SIDE,
            mix_with: Image.Image | None = None, mix: float = 0.5, mix_key: str | None = None,
            progress: Progress | None = None, cancel: CancelFlag | None = None) -> Image.Image:
    """The content painted in the style; same size as the content, alpha kept.

    working_side: the longest side the network paints at; a larger content is
    painted smaller and the result enlarged (None: paint at the content's size).
    mix_with: a second painting, `mix` of the way to it (mix_key caches it like style_key).
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be within 0..1, not {strength}")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be within 0..1, not {mix}")
    vector = cached(vectors, style_key)
    second = cached(vectors, mix_key) if mix_with is not None else None
    steps = Steps(step_count(vector is not None, strength, mix_with is None or second is not None),
                  progress, cancel)
    if vector is None:
        vector = computed_step(vectors, style_key, steps, lambda: style_vector(predictor, style))
    if mix_with is not None:
        if second is None:
            second = computed_step(vectors, mix_key, steps, lambda: style_vector(predictor, mix_with))
        vector = mixed(vector, second, mix)

    content_rgb, alpha = split_alpha(content)
    if strength < 1:
        steps.check()
        vector = strength * vector + (1 - strength) * style_vector(predictor, content_rgb)
        steps.advance()

    steps.check()
    painted = paint(transformer, fit_within(content_rgb, working_side)[0], vector)
    if painted.size != content_rgb.size:
        painted = painted.resize(content_rgb.size, Image.Resampling.LANCZOS)
    steps.advance()
    if preserve_colors:
        painted = keep_colors(content_rgb, painted)
    return join_alpha(painted, alpha)


def paint(transformer: StyleTransformer, picture: Image.Image, vector: torch.Tensor) -> Image.Image:
    """One pass of the transfer network over an RGB picture, at its own size."""
    device, dtype = model_placement(transformer)
    x = image_to_tensor(picture, device, dtype)
    height, width = x.shape[-2:]
    with torch.inference_mode():
        # The vector stays float32: the norms turn it into gains in float32 (nets/arch/arbitrary_style.py).
        out = transformer(pad_to_fit(x, StyleTransformer.stride, MIN_SIDE), vector.to(device))
    return tensor_to_image(out[..., :height, :width])
