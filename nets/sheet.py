"""A preview sheet: one photo painted in several styles, small tiles in a grid, each numbered and named.

People choose faster from pictures than from painting titles. The tiles are
small on purpose: the whole sheet for eight paintings takes about a second on
two CPU threads, and a tile is a preview, not the result.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

from nets.imageio import fit_within
from nets.steps import CancelFlag, Progress, Steps

TILE_SIDE = 320      # the longer side of one tile
COLUMNS = 2          # phones show a sheet in portrait; two columns keep the tiles large enough to judge
GAP = 8
LABEL_HEIGHT = 30
FONT_SIZE = 18
BACKGROUND = (250, 250, 247)
INK = (30, 30, 30)

# DejaVu Sans (Debian's fonts-dejavu-core, which the images install) has the
# dashes, accents and Cyrillic of painting titles; Pillow's own default font
# has only ASCII, so without DejaVu the labels are folded to ASCII.
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf")

PaintTile = Callable[[Image.Image, int], Image.Image]   # (small content, style index) -> painted tile


def preview_sheet(content: Image.Image, labels: Sequence[str], paint_tile: PaintTile, *,
                  tile_side: int = TILE_SIDE, columns: int = COLUMNS, progress: Progress | None = None,
                  cancel: CancelFlag | None = None) -> Image.Image:
    """The content painted once per label, as tiles numbered 1..N under their labels."""
    if not labels:
        raise ValueError("a preview sheet needs at least one style")
    small = fit_within(content.convert("RGB"), tile_side)[0]
    width, height = small.size
    columns = min(columns, len(labels))
    rows = -(-len(labels) // columns)
    sheet = Image.new("RGB", (columns * (width + GAP) + GAP, rows * (height + LABEL_HEIGHT + GAP) + GAP),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, full_unicode = label_font()
    steps = Steps(len(labels), progress, cancel)
    for index, label in enumerate(labels):
        steps.check()
        row, column = divmod(index, columns)
        left, top = GAP + column * (width + GAP), GAP + row * (height + LABEL_HEIGHT + GAP)
        tile = paint_tile(small, index)
        sheet.paste(tile.convert("RGB").resize(small.size), (left, top))
        caption = f"{index + 1}. {label}" if full_unicode else ascii_text(f"{index + 1}. {label}")
        caption = fitted_text(draw, caption, font, width)
        draw.text((left + 2, top + height + (LABEL_HEIGHT - FONT_SIZE) // 2), caption, fill=INK, font=font)
        steps.advance()
    return sheet


@lru_cache(maxsize=1)
def label_font() -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """The label font, and whether it covers more than ASCII."""
    for path in FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, FONT_SIZE), True
    return ImageFont.load_default(size=FONT_SIZE), False


def ascii_text(text: str) -> str:
    """Accents dropped and dashes made plain, for a font that only has ASCII."""
    text = text.replace("—", "-").replace("–", "-").replace("…", "...")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def fitted_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """The text, shortened with an ellipsis until it fits the tile's width."""
    if draw.textlength(text, font=font) <= width - 4:
        return text
    ellipsis = "…" if label_font()[1] else "..."
    while len(text) > 1 and draw.textlength(text + ellipsis, font=font) > width - 4:
        text = text[:-1]
    return text.rstrip() + ellipsis
