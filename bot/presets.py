"""The preset styles: paintings from PRESETS_DIR and the CycleGAN painters.

PRESETS_DIR holds the pictures and `presets.json`, a list of paintings:

    [
      {"file": "starry_night.jpg", "author": "Vincent van Gogh",
       "title": "The Starry Night", "year": 1889},
      {"id": "wave", "file": "great_wave.jpg", "author": "Katsushika Hokusai",
       "title": "The Great Wave off Kanagawa", "year": "c. 1831"}
    ]

`file` is relative to PRESETS_DIR; `author`, `title` and `year` (a number or
text such as "c. 1831") make the button's caption; `id` is optional (the
file's stem by default), must be unique, and names the cached style
statistics. Entries whose file is missing are skipped with a warning, so a
broken entry never keeps the bot from starting.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from aiogram.utils.i18n import lazy_gettext as __

log = logging.getLogger(__name__)

CAPTIONS_FILE = "presets.json"
# Keys travel in callback data (64 bytes in all), so they stay short and plain.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Painting:
    """A preset for fast style transfer: the painting is the style picture."""

    key: str
    path: Path
    author: str
    title: str
    year: str

    @property
    def caption(self) -> str:
        return f"{self.author} — {self.title} ({self.year})" if self.year else f"{self.author} — {self.title}"


@dataclass(frozen=True)
class Painter:
    """A CycleGAN trained on one painter's (or school's) whole body of work."""

    key: str        # also the Engine.translate direction
    name: object    # a lazy translation: names differ by language

    @property
    def caption(self) -> str:
        return str(self.name)


PAINTERS = (
    Painter("monet", __("Claude Monet")),
    Painter("vangogh", __("Vincent van Gogh")),
    Painter("cezanne", __("Paul Cézanne")),
    Painter("ukiyoe", __("Ukiyo-e (Japanese prints)")),
)


class PresetError(ValueError):
    """presets.json cannot be read at all; one line, fit for the log."""


def load_paintings(presets_dir: Path | None) -> list[Painting]:
    if presets_dir is None:
        return []
    captions = presets_dir / CAPTIONS_FILE
    if not captions.is_file():
        log.warning("PRESETS_DIR %s has no %s; only the CycleGAN painters are offered", presets_dir, CAPTIONS_FILE)
        return []
    try:
        entries = json.loads(captions.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"{captions}: cannot read it: {e}") from e
    if not isinstance(entries, list):
        raise PresetError(f"{captions}: expected a JSON list of paintings")

    paintings: dict[str, Painting] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            painting = _painting(presets_dir, entry)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("%s: entry %d skipped: %s", captions, number, e)
            continue
        if painting.key in paintings:
            log.warning("%s: entry %d skipped: id %r is used twice", captions, number, painting.key)
            continue
        paintings[painting.key] = painting
    return list(paintings.values())


def _painting(presets_dir: Path, entry: dict) -> Painting:
    if not isinstance(entry, dict):
        raise TypeError("expected an object with file, author, title, year")
    path = (presets_dir / str(entry["file"])).resolve()
    if not path.is_file():
        raise ValueError(f"no such file {path}")
    key = str(entry.get("id") or path.stem)
    if not KEY_PATTERN.match(key):
        raise ValueError(f"id {key!r} must be 1-32 letters, digits, _ or -")
    return Painting(
        key=key,
        path=path,
        author=str(entry["author"]).strip(),
        title=str(entry["title"]).strip(),
        year=str(entry.get("year") or "").strip(),
    )


class Presets:
    def __init__(self, paintings: list[Painting]):
        self.paintings = {p.key: p for p in paintings}
        self.painters = {p.key: p for p in PAINTERS}

    def painting(self, key: str) -> Painting | None:
        return self.paintings.get(key)

    def painter(self, key: str) -> Painter | None:
        return self.painters.get(key)
