"""The real Real-ESRGAN weights through our RRDBNet and upscale op, on a real photo.

Runs only where the machine has the converted official weights and the test
photos next to the repository (../shared); elsewhere it skips and says why.
"""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nets import upscale as upscaling
from nets.arch.rrdbnet import RRDBNet

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PHOTO = SHARED / "testdata" / "content" / "golden_gate.jpg"  # cables and hills: fine detail
MODELS = {  # file -> RRDB blocks
    "realesrgan-x4plus.fp16.safetensors": 23,
    "realesrgan-x4plus-anime.fp16.safetensors": 6,
}
CROP = 64  # 23 RRDB blocks take ~5 s for this on two busy cores


def real_model(filename: str) -> RRDBNet:
    from safetensors.torch import load_file

    path = SHARED / "weights" / filename
    if not path.is_file():
        pytest.skip(f"real Real-ESRGAN weights not on this machine ({path})")
    net = RRDBNet(num_block=MODELS[filename])
    net.load_state_dict({key: value.float() for key, value in load_file(str(path)).items()}, strict=True)
    return net.eval()


def photo_crop() -> Image.Image:
    """The middle of a real photo shrunk to 256 px: detail a 4x upscaler must restore."""
    if not PHOTO.is_file():
        pytest.skip(f"test photo not on this machine ({PHOTO})")
    photo = Image.open(PHOTO).convert("RGB")
    photo.thumbnail((256, 256), Image.Resampling.LANCZOS)
    left, top = (photo.width - CROP) // 2, (photo.height - CROP) // 2
    return photo.crop((left, top, left + CROP, top + CROP))


def mean_gradient(img: Image.Image) -> float:
    grey = np.asarray(img.convert("L"), dtype=float)
    return (np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 2


@pytest.mark.slow
@pytest.mark.parametrize("filename", MODELS)
def test_real_weights_are_sharper_than_bicubic_and_keep_colour(filename):
    net = real_model(filename)
    crop = photo_crop()
    out = upscaling.upscale(net, crop, tile=0)
    bicubic = crop.resize(out.size, Image.Resampling.BICUBIC)
    assert out.size == (4 * CROP, 4 * CROP)
    # Measured: about 2x bicubic's mean gradient for both models.
    assert mean_gradient(out) > 1.4 * mean_gradient(bicubic)
    colour_shift = np.abs(np.asarray(out, float).mean((0, 1)) - np.asarray(bicubic, float).mean((0, 1)))
    assert colour_shift.max() < 6  # 8-bit levels per channel; measured up to 3.5
    # and it is the same picture: shrunk back, it matches the input closely
    back = np.asarray(out.resize(crop.size, Image.Resampling.LANCZOS), float)
    assert np.abs(back - np.asarray(crop, float)).mean() < 8  # measured 5: GAN texture, not bicubic blur


@pytest.mark.slow
def test_real_weights_tiled_are_close_to_untiled():
    """A GAN feels far context, so tiles with upstream's 10 px pad differ a
    little everywhere (mean under a level), with no seam to see."""
    net = real_model("realesrgan-x4plus-anime.fp16.safetensors")
    crop = photo_crop()
    whole = np.asarray(upscaling.upscale(net, crop, tile=0), float)
    tiled = np.asarray(upscaling.upscale(net, crop, tile=CROP // 2), float)
    assert np.abs(whole - tiled).mean() < 1.5
