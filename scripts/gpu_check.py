"""The one check to run on a GPU: every op in float16, timed, with its memory and its quality.

    python scripts/gpu_check.py [--weights DIR]... [--real-esrgan DIR] [--side PX] [--json FILE]
    python scripts/gpu_check.py --dry-run      # on the CPU, tiny pictures: what the tests run

For each op (lite and AdaIN style, quality mode, CycleGAN, Real-ESRGAN general,
x4plus and anime) it prints the seconds, the peak GPU memory, and how far the
float16 picture is from a float32 run of the same op (PSNR; float16 that
overflowed shows as NaN or black and fails). Then quality mode's gradient: the
share of the conv5_1 style gradient that is exactly zero through a float16 VGG
and through the one quality mode uses, and that its L-BFGS steps really change
the picture. Exit status 1 when any check fails.

Weights: --weights folders are searched in order for each model's
NAME.safetensors; --real-esrgan is a folder of the converted official
Real-ESRGAN files (realesrgan-x4plus.fp16.safetensors, ...; ../shared/weights
here), which then stand in for x4plus and anime. The table says which models
are synthetic (random weights: their timings count, their pictures do not).

On a lent GPU machine (the device tool: its python3 holds a CUDA torch, Pillow,
numpy and safetensors, all nets needs; 64 MiB travel, so carry the real files
and the lite weights, about 47 MB, and make the rest there, offline):
    mkdir -p .cache/gpu-check/real .cache/gpu-check/weights
    cp ../shared/weights/realesrgan-x4plus*.safetensors .cache/gpu-check/real/
    cp $STYLEBOT_TEST_WEIGHTS/lite_style_*.safetensors .cache/gpu-check/weights/
    # there, in one run with carry [".cache/gpu-check"] and timeout_s 300:
    python3 scripts/fetch_weights.py --synthetic --dest /tmp/w \
        --only vgg19_normalised,adain_decoder,cyclegan_monet,realesr_general_x4v3,realesr_general_wdn_x4v3
    python3 scripts/gpu_check.py --weights .cache/gpu-check/weights --weights /tmp/w \
        --real-esrgan .cache/gpu-check/real --json $OUT/gpu_check.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/gpu_check.py` from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from nets import catalog, gpu, style_quality  # noqa: E402
from nets.engine import QUALITY_VGG, Engine  # noqa: E402
from nets.errors import NetsError  # noqa: E402
from nets.fetching.manifest import read_manifest  # noqa: E402
from nets.weights import ModelCache, load_model  # noqa: E402

# The converted official files (../shared/weights/README.md) and the models they stand in for.
REAL_ESRGAN = {"realesrgan-x4plus.fp16.safetensors": "realesrgan_x4plus",
               "realesrgan-x4plus-anime.fp16.safetensors": "realesrgan_x4plus_anime_6b"}
MIN_PSNR_DB = 30.0      # float16 against float32 of the same op; measured ones are far above
QUALITY_STEPS = 20


def weights_folder(folders: list[Path], real_esrgan: Path | None, into: Path) -> dict[str, str]:
    """Link each model's file into one folder (the engine reads one); {model: where it came from}."""
    sources = {}
    if real_esrgan is not None:
        for filename, name in REAL_ESRGAN.items():
            if (real_esrgan / filename).is_file():
                (into / catalog.entry(name).filename).symlink_to((real_esrgan / filename).resolve())
                sources[name] = "real (official, converted)"
    for folder in folders:
        manifest = read_manifest(folder).get("models", {})
        for name in catalog.MODELS:
            target = into / catalog.entry(name).filename
            if name not in sources and (folder / target.name).is_file():
                target.symlink_to((folder / target.name).resolve())
                sources[name] = "synthetic" if manifest.get(name, {}).get("synthetic") else "real"
    return sources


def engine_in(weights: Path, device: str, dtype: torch.dtype, max_side: int) -> Engine:
    """An engine whose models are `dtype` whatever the device (float16 on the CPU too, for the dry run)."""
    engine = Engine(weights, device=device, max_side=max_side, threads=None)
    engine.dtype = dtype
    engine.models = ModelCache(weights, engine.device, dtype, engine.models.budget_bytes)
    return engine


def test_pictures(side: int) -> tuple[Image.Image, Image.Image]:
    """A photo-like content (smooth shapes, edges, noise) and a busy style, made here: no files needed."""
    width, height = side, side * 3 // 4
    content = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    content = Image.blend(content, Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 64).convert("RGB"),
                          0.5)
    style = Image.effect_noise((width, height), 80).convert("RGB")
    style = Image.merge("RGB", (style.getchannel(0), Image.linear_gradient("L").resize(style.size),
                                style.getchannel(0).rotate(90)))
    return content, style


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        return float("nan")
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(engine: Engine, call) -> tuple[Image.Image, float, float | None]:
    """(picture, seconds, peak GPU MB) of one call, after a warm-up call (cuDNN picks its kernels once)."""
    call(engine)
    device = engine.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    started = time.perf_counter()
    image = call(engine).image
    sync(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return image, seconds, peak


def op_calls(content: Image.Image, style: Image.Image, quality_steps: int) -> dict:
    small = content.resize((max(16, content.width // 4), max(12, content.height // 4)))
    return {
        "style lite": ("lite_style_predict", lambda e: e.stylize(content, style, model="lite")),
        "style adain": ("adain_decoder", lambda e: e.stylize(content, style, model="adain")),
        "quality": ("vgg19_normalised", lambda e: e.stylize_quality(content, style, steps=quality_steps)),
        "cyclegan monet": ("cyclegan_monet", lambda e: e.translate(content, "monet")),
        "upscale general": ("realesr_general_x4v3", lambda e: e.upscale(small, model="general", denoise=0.5)),
        "upscale x4plus": ("realesrgan_x4plus", lambda e: e.upscale(small, model="x4plus")),
        "upscale anime": ("realesrgan_x4plus_anime_6b", lambda e: e.upscale(small, model="anime")),
    }


def check_ops(weights: Path, device: str, side: int, quality_steps: int, sources: dict) -> list[dict]:
    fp16 = engine_in(weights, device, torch.float16, side)
    fp32 = engine_in(weights, device, torch.float32, side)
    content, style = test_pictures(side)
    rows = []
    for op, (model, call) in op_calls(content, style, quality_steps).items():
        row = {"op": op, "weights": sources.get(model, "missing")}
        try:
            image, row["seconds"], row["peak_mb"] = timed(fp16, call)
            reference = call(fp32).image
        except Exception as exc:  # a check reports every op, whatever one of them does
            row.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            rows.append(row)
            continue
        pixels = np.asarray(image, dtype=np.float64)
        row.update(size=f"{image.width}x{image.height}", psnr_db=round(psnr(image, reference), 1),
                   mean=round(float(pixels.mean()), 1))
        # float16 that overflowed or went NaN differs from float32 (NaN turns black on the way to
        # uint8); real weights must also give a picture, not a flat one. Random weights may well.
        row["ok"] = bool(row["psnr_db"] >= MIN_PSNR_DB
                         and (row["weights"].startswith("synthetic") or (pixels.std() > 1 and pixels.mean() > 2)))
        rows.append(row)
    return rows


def conv5_1_zero_share(weights: Path, device: torch.device, dtype: torch.dtype, side: int) -> float:
    """The share of the pixels' gradient from the conv5_1 style term that is exactly zero (as quality mode scales it)."""
    vgg = load_model(weights, QUALITY_VGG, device, dtype)
    generator = torch.Generator().manual_seed(0)
    shape = (1, 3, side * 3 // 4, side)
    content, style = torch.rand(shape, generator=generator).to(device), torch.rand(shape, generator=generator).to(device)
    # Gatys et al.'s layers, conv5_1 among them (the default recipe stops at conv4_1): the term float16 lost.
    recipe = dataclasses.replace(style_quality.DEFAULT, style_layers=style_quality.DEFAULT.style_layers + ("conv5_1",))
    loss_of = style_quality.GatysLoss(vgg, content.to(dtype), style.to(dtype), recipe=recipe)
    x = (0.7 * content + 0.3 * style).requires_grad_(True)
    start_loss = loss_of(x).detach()
    layer = style_quality.layer_index("conv5_1")
    features = style_quality.vgg_features(vgg, x.to(dtype), {layer})[layer]
    term = loss_of.style_weight * (style_quality.gram(features.float()) - loss_of.style_targets[layer]).pow(2).mean()
    (grad,) = torch.autograd.grad(term / start_loss, [x])
    return float((grad == 0).float().mean())


def check_quality(weights: Path, device: str, side: int, quality_steps: int) -> dict:
    engine = Engine(weights, device=device, max_side=side)
    content, style = test_pictures(side)
    start = engine.stylize_quality(content, style, steps=0).image
    painted = engine.stylize_quality(content, style, steps=quality_steps).image
    moved = float(np.abs(np.asarray(painted, np.float64) - np.asarray(start, np.float64)).mean())
    lost = conv5_1_zero_share(weights, engine.device, torch.float16, side)
    kept = conv5_1_zero_share(weights, engine.device, torch.float32, side)   # quality mode's VGG on CUDA
    return {"steps": quality_steps, "conv5_1_zero_fp16": round(lost, 3), "conv5_1_zero_quality": round(kept, 3),
            "steps_moved_pixels": round(moved, 2), "ok": bool(kept < 0.9 and moved > 0.1)}


def print_report(facts: dict, rows: list[dict], quality: dict) -> None:
    print(f"device: {facts['device']} ({facts['why']})")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    header = f"{'op':<16} {'weights':<26} {'size':>10} {'s':>8} {'peak MB':>8} {'PSNR dB':>8}  ok"
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['op']:<16} {row['weights']:<26} failed: {row['error']}")
            continue
        peak = f"{row['peak_mb']:.0f}" if row["peak_mb"] is not None else "-"
        print(f"{row['op']:<16} {row['weights']:<26} {row['size']:>10} {row['seconds']:>8.3f} {peak:>8} "
              f"{row['psnr_db']:>8}  {'yes' if row['ok'] else 'NO'}")
    print(f"quality mode: conv5_1 gradient exactly zero through float16 VGG {quality['conv5_1_zero_fp16']:.0%}, "
          f"through quality mode's {quality['conv5_1_zero_quality']:.0%}; {quality['steps']} steps moved the pixels "
          f"by {quality['steps_moved_pixels']} levels on average: {'ok' if quality['ok'] else 'NOT OK'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, action="append", default=[], metavar="DIR",
                        help="folders of NAME.safetensors, searched in order")
    parser.add_argument("--real-esrgan", type=Path, metavar="DIR", default=ROOT.parent / "shared" / "weights",
                        help="the converted official Real-ESRGAN files (default ../shared/weights, where present)")
    parser.add_argument("--side", type=int, help="the pictures' longer side (default 1024; 32 with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny sizes, to test this script")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    side = args.side or (32 if args.dry_run else 1024)
    steps = 2 if args.dry_run else QUALITY_STEPS

    facts = gpu.query()
    try:
        chosen, why = ("cpu", "--dry-run") if args.dry_run else gpu.choose("cuda", facts)
    except NetsError as exc:
        print(f"gpu check: no GPU to check: {exc.message}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        sources = weights_folder(args.weights, args.real_esrgan if args.real_esrgan.is_dir() else None, Path(folder))
        rows = check_ops(Path(folder), chosen, side, steps, sources)
        quality = check_quality(Path(folder), chosen, side, steps)
    report = {"device": chosen, "why": why, "facts": facts.__dict__, "side": side, "ops": rows, "quality": quality}
    print_report(report, rows, quality)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if all(row["ok"] for row in rows) and quality["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
