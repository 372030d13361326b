"""The engine: what a worker builds once and calls for every job.

It picks the device, keeps the models loaded (least recently used go first),
shrinks pictures to `max_side` before any network sees them, times each op and
hands back a `Result`. The ops themselves live in their own modules.
"""
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torch import nn

from nets import precision as precisions
from nets.catalog import FAST_STYLES
from nets import compare, gpu, sheet, style_fast, style_lite, style_quality, translate as translation, upscale as upscaling
from nets.device import DTYPES, dtype_for, resolve_device, set_threads
from nets.errors import OutOfMemory
from nets.imageio import fit_within
from nets.steps import CancelFlag, Progress, Steps
from nets.weights import ModelCache

__all__ = ["FAST_STYLES", "CancelFlag", "Engine", "Progress", "Result"]

log = logging.getLogger(__name__)

VGG = "vgg19_normalised"        # AdaIN's encoder: its decoder was trained on these features
QUALITY_VGG = "vgg19_caffe"      # 💎 Quality's: the ImageNet VGG19 (nets/arch/vgg.py says why two)
DECODER = "adain_decoder"
LITE_PREDICT = "lite_style_predict"
LITE_TRANSFORM = "lite_style_transform"
# The fast style models: "lite" (Magenta's small network, the CPU's choice:
# about 0.2 s for a 1024 px photo on 2 cores) and "adain" (VGG19 + decoder,
# finer but ten times the work; the GPU's choice).


def default_fast_style(device_type: str) -> str:
    return "adain" if device_type == "cuda" else "lite"


@dataclass
class Result:
    image: Image.Image  # same aspect ratio as the input
    downsized: bool     # the input was reduced to max_side first
    seconds: float
    precision: str = ""  # what the op's networks really computed in: fp32, bf16, fp16 or tf32


class Engine:
    def __init__(self, weights_dir: str | Path, *, device: str = "auto", max_side: int | None = 1024,
                 threads: int | None = None, cache_bytes: int = 2_000_000_000, fast_style: str | None = None,
                 precision: str = "auto", gpu_slot: int = 0):
        """max_side: the longest side any op works at (None: no limit); each
        call may override it. threads: torch's CPU threads for this process.
        fast_style: the model `stylize` uses when not told, lite or adain
        (None: lite on the CPU, adain on CUDA). precision: on a CPU, fp32,
        bf16, or auto (bf16 where the processor computes it natively).
        gpu_slot: this worker's number; workers take the usable GPUs in turn."""
        self.device = resolve_device(device, gpu_slot)
        self.precision, self.precision_reason = precisions.choose(precision, self.device.type)
        log.info("precision %s: %s", self.precision, self.precision_reason)
        self.dtype = dtype_for(self.device, self.precision)
        self.quality_precision, self.quality_precision_reason = precisions.for_quality(
            self.precision, self.device.type, tf32=gpu.convolutions_in_tf32(self.device))
        log.info("quality mode in %s: %s", self.quality_precision, self.quality_precision_reason)
        set_threads(threads)
        self.max_side = max_side
        self.fast_style = _fast_style(fast_style or default_fast_style(self.device.type))
        self.models = ModelCache(weights_dir, self.device, self.dtype, gpu.model_budget(self.device, cache_bytes))
        self._style_stats = style_fast.StyleCache()
        self._style_vectors = style_fast.StyleCache()

    def stylize(self, content: Image.Image, style: Image.Image, *, model: str | None = None,
                strength: float = 1.0, preserve_colors: bool = False, style_key: str | None = None,
                mix_with: Image.Image | None = None, mix: float = 0.5, mix_key: str | None = None,
                max_side: int | None = None, progress: Progress | None = None,
                cancel: CancelFlag | None = None) -> Result:
        """Fast style transfer: model lite or adain (None: the engine's fast_style).
        style_key caches what the model keeps of the style under that name. mix_with: a
        second painting, mixed in by `mix` (0: the first alone, 1: the second alone);
        mix_key caches it like style_key."""
        mixing = dict(mix_with=mix_with, mix=mix, mix_key=mix_key)
        if _fast_style(model or self.fast_style) == "lite":
            # float32 on a CPU whatever the precision: with 8 to 32 channels the lite network is
            # memory-bound, and bfloat16 made it slower (0.66x) and visibly different (26.7 dB).
            dtype = self._cpu_float32()
            return self._run(content, max_side, lambda picture: style_lite.stylize(
                self.models.get(LITE_PREDICT, dtype), self.models.get(LITE_TRANSFORM, dtype), picture, style,
                strength=strength, preserve_colors=preserve_colors, style_key=style_key,
                vectors=self._style_vectors, progress=progress, cancel=cancel, **mixing), self._lite_precision())
        return self._run(content, max_side, lambda picture: style_fast.stylize(
            self.models.get(VGG), self.models.get(DECODER), picture, style, strength=strength,
            preserve_colors=preserve_colors, style_key=style_key, stats_cache=self._style_stats,
            progress=progress, cancel=cancel, **mixing))

    def preview_sheet(self, content: Image.Image, styles: Sequence[Image.Image], *, labels: Sequence[str],
                      style_keys: Sequence[str | None] | None = None, model: str | None = None,
                      mix_with: Image.Image | None = None, mixes: Sequence[float] | None = None,
                      mix_key: str | None = None, progress: Progress | None = None,
                      cancel: CancelFlag | None = None) -> Result:
        """The content painted in every style, as small numbered tiles under `labels` on one sheet.
        style_keys cache each style like stylize's style_key does (presets' ids). With mix_with
        and mixes, a sheet of mixes instead: one style, mixed with mix_with by each of mixes."""
        tiles = len(styles) if mix_with is None else len(mixes or ())
        if mix_with is not None and (len(styles) != 1 or not mixes):
            raise ValueError("a sheet of mixes needs one style and at least one mix")
        if len(labels) != tiles or (style_keys is not None and len(style_keys) != len(styles)):
            raise ValueError("preview_sheet needs one label per tile (and one style key per style)")
        keys = list(style_keys) if style_keys is not None else [None] * len(styles)

        def paint_tile(small: Image.Image, index: int) -> Image.Image:
            if mix_with is None:
                return self.stylize(small, styles[index], model=model, style_key=keys[index]).image
            return self.stylize(small, styles[0], model=model, style_key=keys[0], mix_with=mix_with,
                                mix=mixes[index], mix_key=mix_key).image

        started = time.perf_counter()
        image = sheet.preview_sheet(content, labels, paint_tile, progress=progress, cancel=cancel)
        lite = _fast_style(model or self.fast_style) == "lite"
        return Result(image, False, time.perf_counter() - started, self._lite_precision() if lite else self.precision)

    def stylize_quality(self, content: Image.Image, style: Image.Image, *, steps: int = style_quality.DEFAULT_STEPS,
                        strength: float = 1.0, preserve_colors: bool = False, max_side: int | None = None,
                        progress: Progress | None = None, cancel: CancelFlag | None = None) -> Result:
        """Gatys style transfer: `steps` L-BFGS evaluations on the ImageNet VGG19, starting from
        the ⚡ Fast (lite) result, coarse to fine (nets/style_quality.py)."""
        dtype = DTYPES[self.quality_precision.replace("tf32", "fp32")]
        lite_steps = style_lite.step_count(style_cached=False, strength=strength)

        def paint_start(picture: Image.Image, start_progress: Progress) -> Image.Image:
            return self.stylize(picture, style, model="lite", strength=strength, max_side=max(picture.size),
                                progress=start_progress, cancel=cancel).image

        return self._run(content, max_side, lambda picture: style_quality.stylize_quality(
            self.models.get(QUALITY_VGG, dtype), picture, style, steps=steps, strength=strength,
            preserve_colors=preserve_colors, paint_start=paint_start, start_steps=lite_steps,
            progress=progress, cancel=cancel), self.quality_precision)

    def translate(self, image: Image.Image, direction: str, *, max_side: int | None = None,
                  progress: Progress | None = None, cancel: CancelFlag | None = None) -> Result:
        """CycleGAN: summer2winter, winter2summer, monet, vangogh, cezanne or ukiyoe."""
        name = translation.model_name(direction)  # an unknown direction fails before any work
        return self._run(image, max_side, lambda picture: translation.translate(
            self.models.get(name), picture, progress=progress, cancel=cancel))

    def upscale(self, image: Image.Image, *, model: str = "auto", scale: int = 4, tile: int | None = None,
                denoise: float = 0.5, max_side: int | None = None, progress: Progress | None = None,
                cancel: CancelFlag | None = None) -> Result:
        """Real-ESRGAN x4 (or x2, x3: x4, then Lanczos down). model: auto, general, x4plus or anime; denoise
        (0..1) applies to the general model only; tile None picks a safe size."""
        name = upscaling.model_name(model, self.device)
        if scale not in upscaling.SCALES:
            raise ValueError(f"scale must be one of {upscaling.SCALES}, not {scale}")
        return self._run(image, max_side, lambda picture: upscaling.upscale(
            self._upscaler(name, denoise), picture, scale=scale, tile=tile, progress=progress, cancel=cancel))

    def upscale_compare(self, image: Image.Image, *, models: Sequence[str] = compare.COMPARED,
                        labels: Sequence[str] | None = None, original_label: str = "original",
                        scale: int = 4, denoise: float = 0.5, side: int = compare.COMPARE_SIDE,
                        max_side: int | None = None, progress: Progress | None = None,
                        cancel: CancelFlag | None = None) -> Result:
        """One sheet: the side x side region of `image` with the most detail, as each model
        upscales it (`scale`, `denoise` as for upscale), beside the original enlarged, all at 1:1.
        The picture is fitted to max_side first, as upscale fits it, so each panel is that part
        of the full result. Progress counts models."""
        names = [upscaling.model_name(model, self.device) for model in models]   # bad names fail first
        labels = list(labels) if labels is not None else list(models)
        if len(labels) != len(names) or scale not in upscaling.SCALES:
            raise ValueError("upscale_compare needs one label per model and a scale of "
                             f"{', '.join(map(str, upscaling.SCALES))}")

        def sheet_of(picture: Image.Image) -> Image.Image:
            box = compare.detail_box(picture, side)
            steps = Steps(len(names), progress, cancel)
            results = []
            for name, label in zip(names, labels):
                steps.check()
                results.append((label, upscaling.upscale_region(self._upscaler(name, denoise), picture, box,
                                                                scale=scale)))
                steps.advance()
            return compare.compare_sheet(picture.crop(box), results, original_label=original_label)

        return self._run(image, max_side, sheet_of)

    def _cpu_float32(self) -> torch.dtype | None:
        """float32 for the ops that stay in it on a CPU; None (the engine's dtype) elsewhere."""
        return torch.float32 if self.device.type == "cpu" else None

    def _lite_precision(self) -> str:
        return "fp32" if self.device.type == "cpu" else self.precision

    def _upscaler(self, name: str, denoise: float) -> nn.Module:
        weak = upscaling.GENERAL_WEAK_DENOISE
        if name != upscaling.MODELS["general"] or denoise == 1:
            return self.models.get(name)
        if denoise == 0:  # the ends need only one of the two models loaded
            return self.models.get(weak)
        # Blending 1.2 M parameters takes milliseconds, so blends are not cached.
        return upscaling.blend_denoise(self.models.get(name), self.models.get(weak), denoise)

    def _run(self, image: Image.Image, max_side: int | None, op: Callable[[Image.Image], Image.Image],
             precision: str | None = None) -> Result:
        """The op on the picture fitted within max_side, timed; `precision` is what the op
        computes in when it is not the engine's own."""
        started = time.perf_counter()
        fitted, downsized = fit_within(image, self.max_side if max_side is None else max_side)
        try:
            painted = op(fitted)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            # The job's tensors are gone once this frame unwinds; the worker gives the cached blocks back.
            log.warning("out of memory on %s at %dx%d: %s", self.device, *fitted.size, str(exc).split("\n")[0])
            raise OutOfMemory(f"There was not enough memory to work on a {fitted.width}x{fitted.height} picture; "
                              "a smaller picture would fit.") from None
        return Result(painted, downsized, time.perf_counter() - started, precision or self.precision)


def _fast_style(name: str) -> str:
    if name not in FAST_STYLES:
        raise ValueError(f"fast style model must be one of {', '.join(FAST_STYLES)}, not {name!r}")
    return name
