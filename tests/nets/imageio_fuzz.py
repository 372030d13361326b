"""Fuzzing the picture door: damaged files must end as a picture or an ImageError.

Seeds are small valid pictures Pillow writes here, in every format it can both
write and read back. A case is one seed with one to three mutations; case N is
made from a generator seeded with N alone, so any case can be rebuilt and run
on its own:

    python -m tests.nets.imageio_fuzz 1234          # one case, with its traceback
    python -m tests.nets.imageio_fuzz --child        # the batch worker (stdin: case numbers)

Cases run in child processes, many per child to keep start-up cost low, each
child under a memory limit (RLIMIT_AS); the parent watches every case's time
and restarts the child past a case that hangs or crashes it.
"""
from __future__ import annotations

import io
import json
import os
import random
import resource
import select
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from functools import lru_cache

NORMAL_MODES = ("L", "LA", "RGB", "RGBA")
# The codes bot.chat.pictures.image_error_text and the worker's failure text know.
IMAGE_ERROR_CODES = ("empty", "not_image", "corrupt", "too_large", "bomb", "unsupported")
MEMORY_LIMIT_BYTES = 1536 * 1024 * 1024
CASE_SECONDS = 10.0
MAX_SEED_BYTES = 16 * 1024
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- seeds ------------------------------------------------------------------

def _pattern(mode: str, size=(24, 16)):
    """Deterministic pixels with detail everywhere (effect_noise is not seeded)."""
    from PIL import Image

    rng = random.Random(size[0] * 1000 + size[1])
    rgb = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
    gradient = Image.linear_gradient("L").resize(size)
    rgba = Image.merge("RGBA", (*rgb.split()[:3], gradient))
    if mode == "I;16":
        return gradient.convert("I").point(lambda v: v * 257).convert("I;16")
    if mode == "F":
        return gradient.convert("F").point(lambda v: v / 255)
    if mode == "P":
        return rgb.quantize(16)
    return rgba.convert(mode)


def _frames(count=3):
    from PIL import Image

    return [Image.new("RGB", (20, 12), colour) for colour in ("red", "blue", "lime")[:count]]


# Variants beyond "each mode in each format": the ones with their own code paths.
def _special_seeds():
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    frames = _frames()
    animated = dict(save_all=True, append_images=frames[1:], duration=100, loop=0)
    tiff_pages = dict(save_all=True, append_images=[_pattern("RGB"), _pattern("L")])
    yield "PNG I;16", _pattern("I;16"), "PNG", {}
    yield "PNG P transparent", _pattern("P"), "PNG", {"transparency": 3}
    yield "PNG animated", frames[0], "PNG", animated
    yield "PNG text+icc", _pattern("RGB"), "PNG", {"icc_profile": b"\0" * 64, "exif": exif.tobytes()}
    yield "JPEG progressive", _pattern("RGB"), "JPEG", {"progressive": True}
    yield "JPEG CMYK", _pattern("CMYK"), "JPEG", {}
    yield "JPEG exif rotated", _pattern("RGB"), "JPEG", {"exif": exif.tobytes()}
    yield "JPEG 4:2:0 q50", _pattern("RGB"), "JPEG", {"subsampling": 2, "quality": 50}
    yield "MPO two frames", _pattern("RGB"), "MPO", {"save_all": True, "append_images": [_pattern("RGB")]}
    yield "GIF animated", frames[0], "GIF", animated
    yield "GIF transparent", _pattern("P"), "GIF", {"transparency": 0}
    yield "WEBP lossless", _pattern("RGBA"), "WEBP", {"lossless": True}
    yield "WEBP animated", frames[0], "WEBP", animated
    yield "AVIF animated", frames[0], "AVIF", animated
    for compression in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"):
        yield f"TIFF {compression}", _pattern("RGB"), "TIFF", {"compression": compression}
    yield "TIFF group4", _pattern("1"), "TIFF", {"compression": "group4"}
    yield "TIFF float", _pattern("F"), "TIFF", {}
    yield "TIFF I;16", _pattern("I;16"), "TIFF", {}
    yield "TIFF CMYK", _pattern("CMYK"), "TIFF", {}
    yield "TIFF multi-page", _pattern("RGBA"), "TIFF", tiff_pages
    yield "TGA rle", _pattern("RGB"), "TGA", {"compression": "tga_rle"}
    yield "BMP RLE-free P", _pattern("P"), "BMP", {}
    yield "ICO sizes", _pattern("RGBA").resize((32, 32)), "ICO", {"sizes": [(16, 16), (32, 32)]}


@lru_cache(maxsize=1)
def seeds() -> tuple[tuple[str, bytes], ...]:
    """(name, bytes) for every variant Pillow can write here and read back.

    Formats the door does not accept are seeds too: they must be refused
    cleanly, and refusing reads their headers. Large seeds (ICNS writes
    1024-pixel icons) are left out so that a case stays quick.
    """
    from PIL import Image

    Image.init()
    wanted = []
    for fmt in sorted(set(Image.SAVE) & set(Image.OPEN)):
        for mode in ("RGB", "L", "RGBA", "P", "1"):
            wanted.append((f"{fmt} {mode}", _pattern(mode), fmt, {}))
    wanted.extend(_special_seeds())
    found, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, img, fmt, params in wanted:
            try:
                out = io.BytesIO()
                img.save(out, format=fmt, **params)
                data = out.getvalue()
                back = Image.open(io.BytesIO(data))
                back.load()
            except Exception:  # noqa: BLE001 - this Pillow cannot write or read it back: no seed
                continue
            if len(data) <= MAX_SEED_BYTES and data not in seen:
                seen.add(data)
                found.append((name, data))
    return tuple(found)


# --- mutations --------------------------------------------------------------

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                0x80000000, 0xFFFFFFFF, 46_341, 10_000, 7_000)


def _bit_flips(rng, data, _others):
    out = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out), f"bit flips x{flips}"


def _byte_run(rng, data, _others):
    start = rng.randrange(len(data))
    length = rng.randint(1, 64)
    fill = rng.choice((b"\x00", b"\xff", bytes([rng.randrange(256)]), None))
    run = bytes(rng.randrange(256) for _ in range(length)) if fill is None else fill * length
    return data[:start] + run + data[start + length:], f"byte run of {length} at {start}"


def _truncate(rng, data, _others):
    cut = rng.randrange(len(data))
    return data[:cut], f"truncated at {cut} of {len(data)}"


def _splice(rng, data, others):
    name, other = rng.choice(others)
    head, tail = rng.randrange(len(data)), rng.randrange(len(other))
    return data[:head] + other[tail:], f"spliced at {head} with {name!r} from {tail}"


def _size_field(rng, data, _others):
    """Overwrite a 2- or 4-byte field near the start, where headers keep sizes and lengths."""
    width = rng.choice((2, 4))
    value = rng.choice(_INTERESTING) & ((1 << (8 * width)) - 1)
    order = rng.choice(("big", "little"))
    at = rng.randrange(max(1, min(len(data), 256) - width))
    field = value.to_bytes(width, order)
    return data[:at] + field + data[at + width:], f"{width}-byte field at {at} = {value:#x} {order}-endian"


_SEED_SIDES = (12, 16, 20, 24, 32)  # every seed's width and height is one of these
_HUGE_SIDES = (0, 1, 7_000, 7_071, 10_000, 46_341, 65_535, 0x7FFFFFFF, 0xFFFFFFFF)


def _dimension(rng, data, _others):
    """Find where the header stores a side (any small seed side, 2 or 4 bytes, either order)
    and claim a huge or zero one: the door must refuse or decode it without a huge allocation."""
    places = []
    for width in (2, 4):
        for order in ("big", "little"):
            for side in _SEED_SIDES:
                needle = side.to_bytes(width, order)
                at = data.find(needle, 0, 512)
                while at != -1:
                    places.append((at, width, order))
                    at = data.find(needle, at + 1, 512)
    if not places:
        return _size_field(rng, data, _others)
    done = []
    for at, width, order in rng.sample(places, min(len(places), rng.choice((1, 2, 2)))):  # width and height
        value = rng.choice(_HUGE_SIDES) & ((1 << (8 * width)) - 1)
        data = data[:at] + value.to_bytes(width, order) + data[at + width:]
        done.append(f"{at} ({width} bytes {order}-endian) = {value}")
    return data, "sides at " + ", ".join(done)


def _duplicate(rng, data, _others):
    start = rng.randrange(len(data))
    length = rng.randint(4, 256)
    chunk = data[start:start + length]
    at = rng.choice((start + len(chunk), rng.randrange(len(data) + 1)))
    times = rng.choice((1, 1, 2, 50))
    return data[:at] + chunk * times + data[at:], f"{len(chunk)} bytes from {start} copied x{times} to {at}"


MUTATIONS = (_bit_flips, _byte_run, _truncate, _splice, _size_field, _dimension, _duplicate)


@dataclass(frozen=True)
class Case:
    number: int
    seed: str
    mutations: tuple[str, ...]
    data: bytes

    def describe(self) -> str:
        return f"case {self.number}: seed {self.seed!r}, " + "; ".join(self.mutations)


def make_case(number: int) -> Case:
    from nets.imageio import READABLE_FORMATS

    rng = random.Random(number)
    pool = seeds()
    # Three cases in four start from a format the door accepts, where decoding goes deepest.
    accepted = [seed for seed in pool if seed[0].split()[0] in READABLE_FORMATS + ("MPO",)]
    name, data = rng.choice(accepted if rng.random() < 0.75 else pool)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        mutation = rng.choice(MUTATIONS)
        data, what = mutation(rng, data, pool)
        done.append(what)
    return Case(number, name, tuple(done), data)


# --- one case ---------------------------------------------------------------

def check(data: bytes) -> str | None:
    """None when the door answered properly; otherwise what went wrong."""
    from PIL import Image

    from nets.errors import ImageError
    from nets.imageio import load_image, probe

    try:
        info = probe(data)
        img = load_image(data, max_side=64)
    except ImageError as exc:
        if isinstance(exc.__cause__, MemoryError):
            return f"needed more than {MEMORY_LIMIT_BYTES >> 20} MiB before refusing ({exc.code})"
        if not exc.message or "\n" in exc.message:
            return f"ImageError with an unfit message: {exc.message!r}"
        if exc.code not in IMAGE_ERROR_CODES:
            return f"ImageError with a code the bot has no message for: {exc.code!r}"
        return None
    except Exception:  # noqa: BLE001 - anything else is exactly what the fuzz is looking for
        return traceback.format_exc(limit=-4).strip()
    if not isinstance(img, Image.Image) or img.mode not in NORMAL_MODES:
        return f"load_image gave {img!r}"
    if img.width < 1 or img.height < 1 or not info.format:
        return f"load_image gave an empty picture {img!r} / {info!r}"
    img.tobytes()  # the pixels are really there
    return None


def _child() -> None:
    """Runs the case numbers read from stdin, one result line each."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF; only the outcome counts
    seeds()
    print("ready", flush=True)
    for line in sys.stdin:
        number = int(line)
        problem = check(make_case(number).data)
        print(number, json.dumps(problem or "ok"), flush=True)  # one line, whatever the message


# --- the parent ---------------------------------------------------------------

def _spawn() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.nets.imageio_fuzz", "--child"], cwd=_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)  # libtiff chatters


def _ask(child: subprocess.Popen, number: int, seconds: float) -> str | None:
    """The child's verdict on one case; None when it hung or died on it."""
    try:
        child.stdin.write(f"{number}\n")
        child.stdin.flush()
    except BrokenPipeError:
        return None
    ready, _, _ = select.select([child.stdout], [], [], seconds)
    line = child.stdout.readline() if ready else ""
    if not line:
        return None
    told, _, result = line.partition(" ")
    assert int(told) == number, line
    return json.loads(result)


def _started(start_seconds: float) -> subprocess.Popen:
    child = _spawn()
    ready, _, _ = select.select([child.stdout], [], [], start_seconds)
    if not ready or child.stdout.readline() != "ready\n":
        _stop(child)
        raise RuntimeError("the fuzz child did not start")
    return child


def _stop(child: subprocess.Popen) -> None:
    try:
        child.stdin.close()
    except BrokenPipeError:
        pass  # it died
    if child.poll() is None:
        child.kill()
    child.wait()
    child.stdout.close()


def run_cases(numbers, *, case_seconds: float = CASE_SECONDS, start_seconds: float = 120.0) -> dict[int, str]:
    """Problems found, by case number.

    One child runs case after case; a case that hangs or kills it is run
    again in a fresh child of its own to name it, and the batch goes on in a
    new child after it.
    """
    problems: dict[int, str] = {}
    child = _started(start_seconds)
    try:
        for number in numbers:
            result = _ask(child, number, case_seconds)
            if result is None:
                _stop(child)
                problems[number] = _alone(number, case_seconds, start_seconds)
                child = _started(start_seconds)
            elif result != "ok":
                problems[number] = result
    finally:
        _stop(child)
    return problems


def _alone(number: int, case_seconds: float, start_seconds: float) -> str:
    """Why a case stopped its child: run it by itself, so a neighbour is not blamed."""
    child = _started(start_seconds)
    began = time.monotonic()
    result = _ask(child, number, case_seconds)
    hung = False
    if result is None:
        try:
            child.wait(timeout=2)  # a child that died may still be exiting
        except subprocess.TimeoutExpired:
            hung = True
    _stop(child)
    if result == "ok":
        return "stopped its child in a batch but passed alone"
    if result is not None:
        return result
    if hung:
        return f"took over {case_seconds:g} s"
    if child.returncode < 0:
        return f"crashed the process (signal {-child.returncode})"
    return f"ended the process (exit {child.returncode}) after {time.monotonic() - began:.1f} s"


def main(argv: list[str]) -> int:
    if argv == ["--child"]:
        _child()
        return 0
    for arg in argv:
        case = make_case(int(arg))
        print(case.describe(), f"({len(case.data)} bytes)")
        print(check(case.data) or "ok: a picture or an ImageError")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
