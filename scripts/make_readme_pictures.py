"""The pictures in README.md: what each style mode looks like, from inputs anyone may publish.

    python scripts/make_readme_pictures.py --weights weights [--dest docs/pictures]

The photos are public-domain and CC0 sample pictures that ship in the
scikit-image wheel (pinned below and checked by sha256; taken out of the
wheel, scikit-image itself is not installed): Chelsea the cat (CC0, Stefan van
der Walt), coffee (CC0, Rachel Michetti), and the Hubble Deep Field (NASA,
public domain) and a gravel texture (CC0 Textures) as "paintings" with real
colour and texture; the other styles are paintings this script paints itself. Only networks whose real
weights are in --weights are shown: the lite model and 💎 Quality mode's
VGG19 everywhere pip works (their weights come from the package index).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nets import sheet, style_lite  # noqa: E402
from nets.catalog import PackageFile  # noqa: E402
from nets.engine import Engine  # noqa: E402
from nets.fetching import wheels  # noqa: E402
from nets.imageio import fit_within  # noqa: E402

SAMPLES = PackageFile(
    requirement="scikit-image==0.26.0",
    wheel="scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256="74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    member="", convert="")
PHOTOS = {"cat": "skimage/data/chelsea.png", "coffee": "skimage/data/coffee.png"}
ASTRONAUT = "skimage/data/astronaut.png"   # Eileen Collins, NASA, public domain
UPSCALERS = ("realesr_general_x4v3", "realesrgan_x4plus", "realesrgan_x4plus_anime_6b")
HUBBLE = "skimage/data/hubble_deep_field.jpg"
GRAVEL = "skimage/data/gravel.png"   # CC0 Textures, Gravel04
CELL = 300   # the side of one picture in the grids


def sample(member: str, wheels_dir: Path | None) -> Image.Image:
    data, _, _ = wheels.read_member(PackageFile(**{**SAMPLES.__dict__, "member": member}), wheels_dir=wheels_dir)
    return Image.open(io.BytesIO(data)).convert("RGB")


WARM = [(34, 49, 99), (236, 170, 56), (196, 66, 44), (244, 232, 200), (74, 128, 160)]
COOL = [(16, 60, 56), (120, 190, 170), (240, 240, 220), (40, 110, 160), (200, 80, 120)]


def painted_strokes(palette=WARM, size: int = 512, seed: int = 7) -> Image.Image:
    """A painting of short thick strokes, made here, so it can be published with the README."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), palette[0])
    draw = ImageDraw.Draw(img)
    for _ in range(900):
        x, y = rng.integers(0, size, 2)
        angle = rng.normal(0.8, 0.5)
        length = rng.integers(15, 70)
        draw.line((x, y, x + length * np.cos(angle), y + length * np.sin(angle)),
                  fill=palette[rng.integers(len(palette))], width=int(rng.integers(4, 14)))
    return img.filter(ImageFilter.SMOOTH_MORE)


def cell(img: Image.Image, label: str) -> Image.Image:
    """The picture fitted into a CELL x CELL square, labelled underneath."""
    framed = Image.new("RGB", (CELL, CELL + 28), (250, 250, 247))
    fitted = img.copy()
    fitted.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
    framed.paste(fitted, ((CELL - fitted.width) // 2, (CELL - fitted.height) // 2))
    draw = ImageDraw.Draw(framed)
    font, _ = sheet.label_font()
    draw.text((6, CELL + 4), label, fill=(30, 30, 30), font=font)
    return framed


def grid(rows: list[list[Image.Image]]) -> Image.Image:
    width, height = rows[0][0].size
    out = Image.new("RGB", (len(rows[0]) * width, len(rows) * height), (250, 250, 247))
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            out.paste(img, (c * width, r * height))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the README's pictures.")
    parser.add_argument("--weights", type=Path, required=True, help="weights folder with the real lite weights")
    parser.add_argument("--dest", type=Path, default=ROOT / "docs" / "pictures")
    parser.add_argument("--wheels", type=Path, help="a folder that already holds the scikit-image wheel")
    parser.add_argument("--upscalers", type=Path,
                        help="a weights folder whose Real-ESRGAN files are the real ones, for the compare sheet "
                             "(default: --weights, where its manifest says they are not synthetic)")
    args = parser.parse_args(argv)
    records = json.loads((args.weights / "manifest.json").read_text())["models"]
    if any(records[name]["synthetic"] for name in ("lite_style_predict", "lite_style_transform")):
        raise SystemExit("error: the lite weights in --weights are synthetic; fetch them for real first")
    args.dest.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.weights, device="cpu", threads=2, fast_style="lite")

    photos = {name: sample(member, args.wheels) for name, member in PHOTOS.items()}
    styles = {"Hubble Deep Field": sample(HUBBLE, args.wheels), "painted strokes": painted_strokes()}
    gallery = {**styles, "cool strokes": painted_strokes(COOL, seed=3), "gravel (CC0 texture)": sample(GRAVEL, args.wheels)}

    rows = []
    for photo in photos.values():
        for style_name, style in styles.items():
            rows.append([cell(photo, "photo"), cell(style, style_name),
                         cell(engine.stylize(photo, style).image, "⚡ Fast (lite)"),
                         cell(engine.stylize(photo, style, strength=0.5).image, "strength 50%"),
                         cell(engine.stylize(photo, style, preserve_colors=True).image, "photo's colours kept")])
    grid(rows).save(args.dest / "fast_style.jpg", quality=80, optimize=True)

    # The working side: a 1024 px photo painted at 512, 640 (the engine's) and at full size.
    big = photos["coffee"].resize((1024, 683), Image.Resampling.BICUBIC)
    crops = []
    for side in (512, 640, 1024):
        painted = engine.stylize(big, styles["painted strokes"], max_side=1024).image if side == 640 else None
        if painted is None:
            painted = style_lite.stylize(engine.models.get("lite_style_predict"),
                                         engine.models.get("lite_style_transform"), big, styles["painted strokes"],
                                         working_side=side)
        crops.append(cell(painted.crop((312, 191, 712, 491)), f"painted at {side} px (crop)"))
    grid([crops]).save(args.dest / "working_side.jpg", quality=80, optimize=True)

    result = engine.preview_sheet(photos["cat"], list(gallery.values()), labels=list(gallery))
    result.image.save(args.dest / "preview_sheet.jpg", quality=80, optimize=True)
    if records.get("vgg19_caffe", {}).get("synthetic", True):
        raise SystemExit("error: --weights holds no real vgg19_caffe; fetch it for real first")
    written = ["fast_style.jpg", "working_side.jpg", "preview_sheet.jpg"]
    written += quality_pictures(engine, photos, styles, args.dest) + mix_pictures(engine, photos, styles, args.dest)

    # The upscalers' compare sheet as the bot sends it, on a photo a quarter of the astronaut's size.
    upscalers = args.upscalers or (args.weights if not any(records[n]["synthetic"] for n in UPSCALERS) else None)
    if upscalers is None:
        print("the Real-ESRGAN weights in --weights are synthetic: no compare sheet (see --upscalers)")
    else:
        upscaling = Engine(upscalers, device="cpu", threads=2)
        small = sample(ASTRONAUT, args.wheels).resize((256, 256), Image.Resampling.LANCZOS)
        # denoise 1: realesr-general-x4v3 alone (its weak-denoise twin is not at hand to blend in)
        made = upscaling.upscale_compare(small, labels=["Photo: general", "Finest: x4plus",
                                                        "Drawing: anime"], denoise=1.0)
        made.image.save(args.dest / "compare_sheet.png", optimize=True)
        written.append("compare_sheet.png")
    for name in written:
        print(f"wrote {args.dest / name} ({(args.dest / name).stat().st_size // 1024} KB)")
    return 0


QUALITY_SIDE = 384   # the CPU's default side for 💎 Quality (bot/settings.py, QUALITY_MAX_SIDE)


def quality_pictures(engine: Engine, photos: dict, styles: dict, dest: Path) -> list[str]:
    """💎 Quality next to ⚡ Fast at the CPU's defaults; then the choices behind those defaults.
    (The labels name it in words: the label font has no 💎.)"""
    from nets import style_quality

    rows = []
    for photo in photos.values():
        small = fit_within(photo, QUALITY_SIDE)[0]
        for style_name, style in styles.items():
            rows.append([cell(small, "photo"), cell(style, style_name),
                         cell(engine.stylize(small, style).image, "⚡ Fast (lite)"),
                         cell(engine.stylize_quality(small, style).image, "Quality (Gatys)")])
    grid(rows).save(dest / "quality_style.jpg", quality=85, optimize=True)

    # The choices, on one photo and style, each at the same cost as the default.
    photo, style = fit_within(photos["coffee"], QUALITY_SIDE)[0], styles["painted strokes"]
    vgg = engine.models.get("vgg19_caffe", torch.float32)
    default = style_quality.DEFAULT

    def paint(recipe, steps=style_quality.DEFAULT_STEPS, picture=photo, strength=1.0):
        def start(content, progress):
            return engine.stylize(content, style, strength=strength, max_side=max(content.size)).image
        return style_quality.stylize_quality(vgg, picture, style, steps=steps, recipe=recipe, strength=strength,
                                             paint_start=start)

    one_pass_steps = round(style_quality.DEFAULT_STEPS * style_quality.relative_cost(default))
    choices = [cell(engine.stylize(photo, style).image, "⚡ Fast: the start"),
               cell(paint(dataclasses.replace(default, start="content")), "started from the photo"),
               cell(paint(dataclasses.replace(default, coarse_scale=None), one_pass_steps),
                    f"one pass, {one_pass_steps} steps"),
               cell(paint(dataclasses.replace(default, keep_detail=False)), "coarse to fine, blurred"),
               cell(paint(default), "Quality: the default"),
               cell(paint(default, strength=0.5), "Quality, strength 50%")]
    grid([choices[:3], choices[3:]]).save(dest / "quality_choices.jpg", quality=85, optimize=True)
    return ["quality_style.jpg", "quality_choices.jpg"]


def mix_pictures(engine: Engine, photos: dict, styles: dict, dest: Path) -> list[str]:
    """🎭 Two paintings mixed: the first alone, 25, 50 and 75 % of the second, the second alone."""
    first, second = styles["painted strokes"], styles["Hubble Deep Field"]
    photo = photos["cat"]
    row = [cell(first, "first painting")]
    for mix in (0, 0.25, 0.5, 0.75, 1):
        label = {0: "first alone", 1: "second alone"}.get(mix, f"{round(mix * 100)}% of the second")
        row.append(cell(engine.stylize(photo, first, mix_with=second, mix=mix).image, label))
    row.append(cell(second, "second painting"))
    grid([row]).save(dest / "mixed_paintings.jpg", quality=80, optimize=True)
    return ["mixed_paintings.jpg"]


if __name__ == "__main__":
    sys.exit(main())
