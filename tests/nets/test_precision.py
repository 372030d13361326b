"""bfloat16 on the CPU: when it is chosen, and that its pictures cannot be told from float32's.

The thresholds come from measurements (2026-12-02, AMD EPYC with avx512_bf16)
with some room above them; each test says what it measured. bfloat16 runs on
every x86-64 torch build (emulated where the processor lacks it, only slower),
so these run everywhere, on small pictures.
"""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nets import precision
from nets.arch.rrdbnet import RRDBNet
from nets.arch.srvgg import SRVGGNetCompact
from nets.device import image_to_tensor
from nets.engine import Engine
from nets.weights import load_model
from tests.nets.test_lite import content_picture, style_picture

SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights"
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


# --- the choice ------------------------------------------------------------------

def test_auto_takes_bf16_only_where_the_processor_computes_it():
    assert precision.choose("auto", "cpu", WITH_BF16)[0] == "bf16"
    assert precision.choose("auto", "cpu", ARM_BF16)[0] == "bf16"
    chosen, why = precision.choose("auto", "cpu", WITHOUT)
    assert chosen == "fp32" and "no native bfloat16" in why


def test_asking_overrides_the_processor_and_the_log_line_says_why():
    assert precision.choose("fp32", "cpu", WITH_BF16) == ("fp32", "float32 was asked for")
    chosen, why = precision.choose("bf16", "cpu", WITHOUT)
    assert chosen == "bf16" and "slower" in why
    assert "avx512_bf16" in precision.choose("bf16", "cpu", WITH_BF16)[1]


def test_cuda_keeps_float16_and_bad_names_are_refused():
    assert precision.choose("bf16", "cuda", WITH_BF16)[0] == "fp16"
    with pytest.raises(ValueError):
        precision.choose("fp8", "cpu", WITH_BF16)


def test_the_engine_logs_its_choice_keeps_lite_in_float32_and_quality_in_its_precision(weights_dir, caplog):
    with caplog.at_level("INFO", logger="nets.engine"):
        engine = Engine(weights_dir, device="cpu", threads=1, precision="bf16")
    assert engine.precision == "bf16" and engine.dtype == torch.bfloat16
    assert "precision bf16" in caplog.text
    photo = content_picture(48, 40)
    engine.translate(photo, "monet")
    assert next(engine.models.get("cyclegan_monet").parameters()).dtype == torch.bfloat16
    engine.stylize(photo, style_picture(size=64), model="lite")
    quality = engine.stylize_quality(photo, style_picture(size=64), steps=1)
    assert "lite_style_transform@float32" in engine.models.names()
    # bfloat16 keeps float32's range, so quality mode's gradients survive it (test_gpu_quality.py).
    assert "vgg19_caffe" in engine.models.names() and quality.precision == "bf16"
    assert "quality mode in bf16" in caplog.text


def test_lite_gives_the_same_picture_in_both_precisions(weights_dir):
    """Kept float32: bfloat16 made the 8-32 channel network slower (0.66x) and visibly different
    (26.7 dB), so a bf16 engine must paint with lite exactly as a float32 one does."""
    photo, style = content_picture(96, 64), style_picture(size=64)
    fp32 = Engine(weights_dir, device="cpu", threads=1, precision="fp32").stylize(photo, style, model="lite")
    bf16 = Engine(weights_dir, device="cpu", threads=1, precision="bf16").stylize(photo, style, model="lite")
    assert fp32.image.tobytes() == bf16.image.tobytes()


# --- quality guards: random weights, as relative error ------------------------------

def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().mean() / b.float().abs().mean()).item()


PHOTO = image_to_tensor(content_picture(96, 64), torch.device("cpu"), torch.float32)

# name -> (input, largest relative error allowed). Measured: 0.23%, 0.31%, 1.6%, 0.19%. CycleGAN's nine
# residual blocks of 256 channels add up more rounding; its real pictures stay at 47 dB.
RANDOM_WEIGHTS = {
    "vgg19_normalised": (PHOTO, 0.01),
    "adain_decoder": (torch.rand(1, 512, 12, 8, generator=torch.Generator().manual_seed(0)), 0.01),
    "cyclegan_summer2winter": (PHOTO * 2 - 1, 0.04),
    "realesr_general_x4v3": (PHOTO, 0.01),
}


@pytest.mark.parametrize("name", RANDOM_WEIGHTS)
def test_bf16_stays_close_to_fp32_on_random_weights(weights_dir, name):
    x, allowed = RANDOM_WEIGHTS[name]
    with torch.inference_mode():
        fp32 = load_model(weights_dir, name)(x)
        bf16 = load_model(weights_dir, name, "cpu", torch.bfloat16)(x.to(torch.bfloat16))
    assert _relative_error(bf16, fp32) < allowed


# --- quality guards: the real Real-ESRGAN weights, in PSNR -------------------------------

# file -> (network, input). The RRDB networks get a corner of the photo: where the processor has no
# bfloat16 of its own (AVX2), torch emulates it some hundred times slower, and x4plus on the whole
# 96x64 photo took 14 minutes there; the rounding measured is the same per pixel.
SMALL = PHOTO[..., :24, :32]
REAL_ESRGAN = {
    "realesrgan-x4plus.fp16.safetensors": (lambda: RRDBNet(num_block=23), SMALL),
    "realesrgan-x4plus-anime.fp16.safetensors": (lambda: RRDBNet(num_block=6), SMALL),
    "realesr-animevideov3-x4.fp16.safetensors": (lambda: SRVGGNetCompact(num_conv=16), PHOTO),
}


@pytest.mark.parametrize("file", REAL_ESRGAN)
def test_bf16_upscales_indistinguishably_with_the_real_weights(file):
    """48 dB is an RMS difference of one 8-bit level, under what the eye or the PNG can show.
    Measured on the whole photo: 56.0 dB (x4plus), 58.1 dB (anime 6B), 56.9 dB (animevideov3)."""
    path = SHARED_WEIGHTS / file
    if not path.is_file():
        pytest.skip(f"the real Real-ESRGAN weights are not on this machine ({path})")
    build, photo = REAL_ESRGAN[file]
    net = build()
    net.load_state_dict(load_file(str(path)))
    net.eval().requires_grad_(False)
    half = copy.deepcopy(net).to(torch.bfloat16)
    with torch.inference_mode():
        fp32, bf16 = net(photo).clamp(0, 1), half(photo.to(torch.bfloat16)).float().clamp(0, 1)
    psnr = 10 * np.log10(1 / ((bf16 - fp32) ** 2).mean().item())
    assert psnr > 48, psnr
