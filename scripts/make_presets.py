"""Bake the preset paintings into a folder the bot reads as PRESETS_DIR.

    python scripts/make_presets.py --dest presets-out                 # download from Wikimedia Commons
    python scripts/make_presets.py --dest presets-out --synthetic     # generated pictures, no network

The sources are presets/paintings.json: public-domain paintings, each with its
author, title, year, Commons page, download URL and the sha256 of the
downloaded file. A download whose hash differs from a recorded one fails the
run. Where no hash is recorded (null), the script computes one, warns that it
is unverified and writes it to DEST/presets.json, so that it can be checked
and copied into paintings.json.

DEST gets ID.jpg per painting (longer side at most --max-side) and
presets.json, the list the bot reads: {"id", "file", "author", "title",
"year"} per painting, plus "source" and "sha256" for whoever audits it.
A painting that cannot be downloaded is left out with a warning (the bot
offers the rest); none at all is an error.

Synthetic mode writes generated pictures under the same ids and captions, so
an offline build or a test sees the same menu as the real image.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "presets" / "paintings.json"
CAPTIONS_FILE = "presets.json"  # the name bot/presets.py reads
# Wikimedia asks every client to say who it is (meta.wikimedia.org/wiki/User-Agent_policy).
USER_AGENT = "stylebot-presets/1.0 (build script of the stylebot Telegram bot) python-urllib"
CAPTION_KEYS = ("id", "author", "title", "year")


class PresetsError(Exception):
    """One line for the build log."""


def read_sources(path: Path) -> list[dict]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise PresetsError(f"{path}: an id is used twice")
    return entries


def download(url: str, *, timeout: float, retries: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            if (e.code < 500 and e.code != 429) or attempt == retries:  # a 404 will not get better
                raise
        except (urllib.error.URLError, TimeoutError):
            if attempt == retries:
                raise
        time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def fetch(entry: dict, cache: Path | None, *, timeout: float, retries: int) -> tuple[bytes, str]:
    """The painting's file, from the cache or the network, checked against its recorded sha256."""
    cached = cache / f"{entry['id']}.download" if cache else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
    else:
        data = download(entry["url"], timeout=timeout, retries=retries)
    digest = hashlib.sha256(data).hexdigest()
    expected = entry.get("sha256")
    if expected and digest != expected:
        if cached is not None:
            cached.unlink(missing_ok=True)  # a bad cached copy must not stick
        raise PresetsError(f"{entry['id']}: sha256 {digest} differs from the recorded {expected} ({entry['url']})")
    if not expected:
        print(f"{entry['id']}: no recorded sha256; computed {digest} (unverified)", file=sys.stderr)
    if cached is not None and not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return data, digest


def synthetic_painting(key: str, size: tuple[int, int]) -> Image.Image:
    """A generated picture with strokes and colours of its own, the same for the same key."""
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    palette = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(5)]
    img = Image.new("RGB", size, palette[0])
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(400):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(8, max(9, w // 6))
        colour = rng.choice(palette)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=rng.randrange(2, 12))
        else:
            draw.line((x, y, x + rng.randrange(-r, r + 1), y + rng.randrange(-r, r + 1)),
                      fill=colour, width=rng.randrange(3, 20))
    return img.filter(ImageFilter.SMOOTH_MORE)


def fit(img: Image.Image, max_side: int) -> Image.Image:
    img = img.convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    return img


def make(entries: list[dict], dest: Path, *, synthetic: bool, cache: Path | None, max_side: int,
         timeout: float, retries: int) -> list[dict]:
    dest.mkdir(parents=True, exist_ok=True)
    captions = []
    for entry in entries:
        if synthetic:
            img, digest = synthetic_painting(entry["id"], (max_side, max_side * 3 // 4)), None
        else:
            try:
                data, digest = fetch(entry, cache, timeout=timeout, retries=retries)
                img = Image.open(io.BytesIO(data))
                img.load()
            except (urllib.error.URLError, TimeoutError, OSError) as e:  # OSError: also not a picture
                print(f"{entry['id']}: left out, cannot get {entry['url']}: {e}", file=sys.stderr)
                continue
        filename = f"{entry['id']}.jpg"
        fit(img, max_side).save(dest / filename, "JPEG", quality=90, optimize=True)
        caption = {key: entry[key] for key in CAPTION_KEYS}
        caption["file"] = filename
        if not synthetic:
            caption.update(source=entry["source"], sha256=digest, sha256_verified=bool(entry.get("sha256")))
        captions.append(caption)
    if not captions:
        raise PresetsError("no painting could be made")
    (dest / CAPTIONS_FILE).write_text(json.dumps(captions, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return captions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_presets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", required=True, type=Path, help="the folder to write (PRESETS_DIR)")
    parser.add_argument("--sources", type=Path, default=SOURCES, help=f"the list of paintings (default {SOURCES})")
    parser.add_argument("--synthetic", action="store_true", help="generate pictures instead of downloading")
    parser.add_argument("--cache", type=Path, help="keep downloads here and reuse them on the next run")
    parser.add_argument("--max-side", type=int, default=1024, help="longer side of the pictures (default 1024)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")
    parser.add_argument("--retries", type=int, default=3, help="extra tries after a transient failure")
    args = parser.parse_args(argv)
    try:
        captions = make(read_sources(args.sources), args.dest, synthetic=args.synthetic, cache=args.cache,
                        max_side=args.max_side, timeout=args.timeout, retries=args.retries)
    except (PresetsError, OSError, ValueError, KeyError) as e:
        print(f"make_presets.py: error: {e}", file=sys.stderr)
        return 1
    kind = "synthetic" if args.synthetic else "downloaded"
    print(f"{len(captions)} {kind} preset(s) in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
