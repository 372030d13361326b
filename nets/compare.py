"""Side by side at 1:1 pixels: the compare sheet of upscaling models, and the before/after crop.

Telegram shows a large picture shrunk to the screen, which hides exactly what
an upscaler changes. Both pictures here show one small region of the picture
at the result's own pixels, where the picture has the most detail (edges and
texture: where models differ and where a viewer looks). The original is
enlarged without smoothing, so its pixels show as the blocks they are.

Pillow and numpy only, no torch: the bot makes the before/after crop in its
own process; the compare sheet's model runs are the engine's (nets.engine).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from nets.sheet import ascii_text, fitted_text, label_font

Box = tuple[int, int, int, int]   # left, top, right, bottom

# The models a compare sheet shows, in this order: photos (fast), photos (finest), drawings.
COMPARED = ("general", "x4plus", "anime")
# The compare sheet's region, in input pixels: 48 px is 192 px at x4, enough to tell the
# models apart (water, cables, lines), and what the budget allows: x4plus (23 RRDB
# blocks) on the region and its context is most of the sheet's 8 s on 2 CPU threads;
# 64 px took 2.5 times as long on a 2-core AMD EPYC (README, "Upscaling").
COMPARE_SIDE = 48
# The context an upscaler's tile borrows from its neighbours (nets.upscale.TILE_PAD, here without torch).
TILE_CONTEXT = 10
# The before/after crop's side, in result pixels: two of them side by side fill a phone's width.
CROP_SIDE = 384
GAP = 8
LABEL_HEIGHT = 30
BACKGROUND = (250, 250, 247)
INK = (30, 30, 30)


def detail_box(image: Image.Image, side: int) -> Box:
    """The side x side square (less, for a smaller picture) with the most detail.

    Detail is the mean absolute difference between neighbouring pixels of the
    grey picture: high on edges and texture, zero on sky. Squares are tried on
    a grid of an eighth of the side, through a summed-area table, so a 1024 px
    picture takes milliseconds.
    """
    width, height = image.size
    box_w, box_h = min(side, width), min(side, height)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, side // 8)
    tops = _positions(height - box_h, step)
    lefts = _positions(width - box_w, step)
    sums = (table[np.ix_(tops + box_h, lefts + box_w)] - table[np.ix_(tops, lefts + box_w)]
            - table[np.ix_(tops + box_h, lefts)] + table[np.ix_(tops, lefts)])
    row, column = np.unravel_index(int(np.argmax(sums)), sums.shape)
    left, top = int(lefts[column]), int(tops[row])
    return left, top, left + box_w, top + box_h


def detail_part(image: Image.Image, side: int, context: int) -> Image.Image:
    """The most detailed side x side square grown by `context` pixels each way (within the
    picture): a small picture an upscaler sees at full resolution, its context included."""
    left, top, right, bottom = detail_box(image, side)
    return image.crop((max(left - context, 0), max(top - context, 0),
                       min(right + context, image.width), min(bottom + context, image.height)))


def _positions(last: int, step: int) -> np.ndarray:
    """0, step, 2 step, ... and always `last` itself, so the far edge is tried too."""
    return np.unique(np.append(np.arange(0, last + 1, step), last))


def scaled_box(box: Box, factor: float, size: tuple[int, int]) -> Box:
    """The box in a picture `factor` times larger (of `size`), rounded and kept inside it."""
    left, top, right, bottom = (round(v * factor) for v in box)
    return left, top, min(right, size[0]), min(bottom, size[1])


def enlarged(region: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The region blown up to `size` without smoothing: its pixels show as blocks."""
    return region.convert("RGB").resize(size, Image.Resampling.NEAREST)


def labelled_grid(panels: Sequence[tuple[str, Image.Image]], columns: int) -> Image.Image:
    """Panels of one size in a grid, each with its label above it."""
    width, height = panels[0][1].size
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * (width + GAP) + GAP, rows * (height + LABEL_HEIGHT + GAP) + GAP),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, full_unicode = label_font()
    for index, (label, panel) in enumerate(panels):
        row, column = divmod(index, columns)
        left, top = GAP + column * (width + GAP), GAP + row * (height + LABEL_HEIGHT + GAP)
        text = fitted_text(draw, label if full_unicode else ascii_text(label), font, width)
        draw.text((left + 2, top + 4), text, fill=INK, font=font)
        sheet.paste(panel.convert("RGB").resize((width, height)), (left, top + LABEL_HEIGHT))
    return sheet


def compare_sheet(original: Image.Image, results: Sequence[tuple[str, Image.Image]], *,
                  original_label: str = "original") -> Image.Image:
    """The original region, enlarged, beside each model's result of it: all at the results' 1:1 pixels."""
    if not results:
        raise ValueError("a compare sheet needs at least one result")
    size = results[0][1].size
    return labelled_grid([(original_label, enlarged(original, size)), *results], columns=2)


def before_after(original: Image.Image, result: Image.Image, *, side: int = CROP_SIDE,
                 labels: tuple[str, str] = ("before", "after")) -> Image.Image:
    """The most detailed side x side region of `result` at 1:1, beside the same region of
    `original` enlarged to match. Works for any factor, 1.3 as well as 4."""
    factor = result.width / original.width
    in_side = max(1, round(side / factor))
    box = detail_box(original, in_side)
    out_box = scaled_box(box, factor, result.size)
    after = result.convert("RGB").crop(out_box)
    before = enlarged(original.crop(box), after.size)
    return labelled_grid([(labels[0], before), (labels[1], after)], columns=2)
