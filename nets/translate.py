"""CycleGAN translation (Zhu et al. 2017): season swaps and painters' looks.

The generator is run one layer at a time so progress and cancel come between
layers; InstanceNorm normalises over the whole picture, so tiling it would
change the result and is not an option.
"""
import torch
from PIL import Image

from nets.arch.cyclegan import ResnetGenerator
from nets.device import image_to_tensor, join_alpha, model_placement, split_alpha, tensor_to_image
from nets.steps import CancelFlag, Progress, Steps
from nets.tiling import pad_to_fit

DIRECTIONS = ("summer2winter", "winter2summer", "monet", "vangogh", "cezanne", "ukiyoe")
# Two stride-2 convolutions down, two transposed ones up; the residual
# blocks' reflection padding needs 2 pixels at the bottom.
STRIDE = 4
MIN_SIDE = 2 * STRIDE


def model_name(direction: str) -> str:
    """The catalog name of a direction's generator."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    return f"cyclegan_{direction}"


def translate(generator: ResnetGenerator, image: Image.Image, *, progress: Progress | None = None,
              cancel: CancelFlag | None = None) -> Image.Image:
    """The picture through one CycleGAN generator; same size, alpha kept."""
    rgb, alpha = split_alpha(image)
    device, dtype = model_placement(generator)
    layers = list(generator.model)
    steps = Steps(len(layers), progress, cancel)
    x = image_to_tensor(rgb, device, dtype) * 2 - 1  # the generator works in -1..1
    height, width = x.shape[-2:]
    x = pad_to_fit(x, STRIDE, MIN_SIDE)
    with torch.inference_mode():
        for layer in layers:
            steps.check()
            x = layer(x)
            steps.advance()
    out = (x[..., :height, :width] + 1) / 2
    return join_alpha(tensor_to_image(out), alpha)
