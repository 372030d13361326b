"""Bytes in, PIL image out, and back: the only door pictures come through.

Imports Pillow and nothing heavier, so the bot process can check an upload
without loading torch. Every way a file can be wrong ends as an `ImageError`
with a code and a message fit to show a person; Pillow's own exceptions never
leak out.
"""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import PIL
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from nets.errors import ImageError

# 50 megapixels: above any phone camera (48 MP sensors), and decoding 50 MP as
# RGBA takes 200 MB, which a worker can afford. Pillow's own guard
# (Image.MAX_IMAGE_PIXELS, about 89 MP) stays as it is and still applies on top.
MAX_PIXELS = 50_000_000

# Only formats people send as photos or pictures. Pillow can open many more,
# and some of them (EPS) hand the file to an outside program when decoded.
READABLE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

# The first bytes of the readable formats, so a damaged file of a known kind is
# reported as damaged instead of "not a picture".
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*")

# Pillow raises the error above twice its pixel limit and warns above it; the
# warning is made an error while we decode.
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)

# Where Pillow's Python code lives: an exception raised there is about the file.
_PILLOW_DIR = os.path.dirname(os.path.abspath(PIL.__file__)) + os.sep

# libjpeg decodes each scan of a progressive JPEG over the whole picture, so a
# few bytes per extra scan cost a full pass each: 200 repeated scans made a
# 16 MP file of 85 KB take 6 s here, and 20 MB of them would take hours.
# Encoders write about 10 (libjpeg's progression) to 20 (mozjpeg); a camera 1.
MAX_JPEG_SCANS = 100

# Some decoders are Python code (of the accepted formats: BMP's run-length
# compression), about 0.7 s per MB here; the 20 MB Telegram allows would take
# 15 s. Files they decode are refused above this size.
MAX_PYTHON_DECODED_BYTES = 2 * 1024 * 1024

# EXIF orientations 5..8 turn the picture by 90 degrees, swapping width and height.
_ORIENTATION_TAG = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding the pixels."""

    format: str
    width: int          # as displayed, after the EXIF orientation
    height: int
    mode: str           # Pillow's mode of the stored pixels, before normalising
    is_animated: bool   # load_image takes the first frame


def probe(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Format, size and frame count of a picture, decoding nothing.

    Raises the same `ImageError`s as `load_image` for what the header alone can
    tell (empty, not a picture, too large); a picture that is damaged further
    in passes here and fails in `load_image`.
    """
    with _door("This picture is damaged and cannot be opened."):
        img = _open(data, max_pixels)
        orientation = 1
        with _optional():  # a broken EXIF block only loses the rotation
            orientation = img.getexif().get(_ORIENTATION_TAG, 1)
        # Finding a second frame reads past the first frame's data, not decoding it.
        is_animated = bool(getattr(img, "is_animated", False))
    width, height = img.size
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(format=img.format or "", width=width, height=height, mode=img.mode,
                     is_animated=is_animated)


def load_image(data: bytes, *, max_pixels: int = MAX_PIXELS, max_side: int | None = None) -> Image.Image:
    """Decode a picture into a mode the networks accept: L, LA, RGB or RGBA.

    The EXIF orientation is applied, an animation gives its first frame, and
    the whole file is decoded now, so a truncated file fails here instead of
    turning grey half-way down. `max_side` is a hint that the caller will shrink
    the picture to that side anyway: a JPEG is then decoded at 1/2, 1/4 or 1/8
    scale when that still leaves at least `max_side` pixels (much faster, and
    less memory). The result can still be larger than `max_side`; use
    `fit_within` for an exact bound.
    """
    with _door("This picture is damaged or incomplete and cannot be opened."):
        img = _open(data, max_pixels)
        if max_side:
            target, _ = _fitted_size(img.size, max_side)
            img.draft(None, target)  # JPEG only; other formats ignore it
        img.load()
        with _optional():  # a broken EXIF block only loses the rotation, not the picture
            ImageOps.exif_transpose(img, in_place=True)
        return _normalise_mode(img)


def fit_within(img: Image.Image, max_side: int | None) -> tuple[Image.Image, bool]:
    """Shrink so the longer side is at most `max_side`, keeping the aspect ratio.

    Returns the picture and whether it was shrunk. Never enlarges.
    """
    if not max_side:
        return img, False
    size, shrunk = _fitted_size(img.size, max_side)
    if not shrunk:
        return img, False
    # reducing_gap first halves the picture with a box filter where the scale is
    # large: the same look as plain Lanczos, several times faster on big photos.
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), True


def encode_png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def encode_jpeg(img: Image.Image, quality: int = 92) -> bytes:
    """JPEG has no transparency: transparent parts become white, as a viewer shows them."""
    out = io.BytesIO()
    flatten_alpha(img).save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def flatten_alpha(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite a picture with transparency onto a plain background (L or RGB out)."""
    if img.mode not in ("LA", "RGBA"):
        return img
    base_mode = img.mode[:-1]
    fill = background if base_mode == "RGB" else round(sum(background) / 3)
    flat = Image.new(base_mode, img.size, fill)
    flat.paste(img.convert(base_mode), mask=img.getchannel("A"))
    return flat


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Read the header and check the size, before a single pixel is decoded."""
    if not data:
        raise ImageError("The file is empty.", "empty")
    try:
        img = Image.open(io.BytesIO(data), formats=READABLE_FORMATS)
    except UnidentifiedImageError as exc:
        raise _unreadable(data) from exc
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError("This picture has no pixels.", "corrupt")
    if img.format in ("JPEG", "MPO") and _jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
        raise ImageError(f"This JPEG has more than {MAX_JPEG_SCANS} scans, far more than any camera "
                         "or editor writes, and was refused as damaged.", "corrupt")
    if len(data) > MAX_PYTHON_DECODED_BYTES and any(tile[0] in Image.DECODERS for tile in img.tile):
        raise ImageError(f"{img.format} files compressed this way are only read up to "
                         f"{MAX_PYTHON_DECODED_BYTES >> 20} MB; send a JPEG, PNG or WebP.", "unsupported")
    if width * height > max_pixels:
        raise ImageError(f"This picture is too large ({width}x{height}); the limit is "
                         f"{max_pixels / 1e6:g} megapixels.", "too_large")
    return img


def _jpeg_scans(data: bytes, stop_after: int) -> int:
    """How many scans (SOS segments) the JPEG's own segments hold, counting up to stop_after + 1.

    Walks marker by marker, stepping over each segment by its length (so an
    EXIF thumbnail's scans are not counted) and over entropy-coded data, where
    0xFF is followed by a stuffed 0x00 or a restart marker.
    """
    pos, scans = 2, 0  # after SOI
    while scans <= stop_after:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            break
        marker = data[pos + 1]
        if marker in (0x00, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            pos += 1  # stuffed byte, fill byte, or a marker without a length
            continue
        if marker == 0xD9:  # EOI
            break
        scans += marker == 0xDA
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return scans


def _unreadable(data: bytes) -> ImageError:
    if data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return ImageError("This picture is damaged and cannot be opened.", "corrupt")
    try:
        # Opening reads only the header; it names the format for a kinder message.
        other = Image.open(io.BytesIO(data)).format
    except Exception:  # noqa: BLE001 - anything Pillow cannot name is simply not a picture
        other = None
    if other:
        return ImageError(f"{other} pictures are not supported; send a JPEG, PNG or WebP.", "unsupported")
    return ImageError("This file is not a picture.", "not_image")


def _bomb_error() -> ImageError:
    # Pillow's guard: the header claims so many pixels that decoding them could
    # exhaust memory, typically a tiny file crafted to expand enormously.
    return ImageError("This picture claims to be enormous and was refused.", "bomb")


@contextmanager
def _door(damaged: str):
    """The one place where everything that can go wrong with a file becomes an ImageError.

    Pillow's decoders fail on bad data with nearly any exception type
    (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
    TypeError, ZeroDivisionError, struct.error, RuntimeError from the AVIF
    and WebP bindings, and more in new versions), so anything raised inside
    Pillow's own code counts as a damaged file. An exception raised in our
    code is a bug and goes on unchanged.

    Pillow only warns between its pixel limit and twice it; the warning is
    made an error here. catch_warnings changes the process-wide filters while
    it lasts, so another thread may briefly share the stricter filter; that is
    harmless here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except _BOMB as exc:
        raise _bomb_error() from exc
    except MemoryError as exc:
        raise ImageError("This picture is too large to open.", "too_large") from exc
    except Exception as exc:  # noqa: BLE001 - sorted by _raised_in_pillow
        if not _raised_in_pillow(exc):
            raise
        raise ImageError(damaged, "corrupt") from exc


@contextmanager
def _optional():
    """For extras such as the EXIF rotation: a failure inside Pillow only skips the extra."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - sorted by _raised_in_pillow
        if not _raised_in_pillow(exc):
            raise


def _raised_in_pillow(exc: BaseException) -> bool:
    """Whether the innermost frame of the traceback is Pillow's (or C code it called)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PILLOW_DIR)


def _fitted_size(size: tuple[int, int], max_side: int) -> tuple[tuple[int, int], bool]:
    width, height = size
    longer = max(width, height)
    if longer <= max_side:
        return size, False
    scale = max_side / longer
    return (max(1, round(width * scale)), max(1, round(height * scale))), True


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to L, LA, RGB or RGBA, keeping transparency."""
    mode = img.mode
    has_transparency = "transparency" in img.info  # a tRNS chunk or a GIF's clear colour
    if mode in ("LA", "RGBA"):
        return img
    if mode in ("L", "1"):
        if has_transparency:
            return img.convert("LA")
        return img if mode == "L" else img.convert("L")
    if mode in ("RGB", "RGBX", "P"):
        if has_transparency:
            return img.convert("RGBA")
        return img if mode == "RGB" else img.convert("RGB")
    if mode in ("PA", "RGBa"):  # palette with alpha; premultiplied alpha
        return img.convert("RGBA")
    if mode == "La":
        return img.convert("LA")
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode.startswith("I;16"):
        # 16-bit grey (PNG, TIFF): 65535 is white, so divide by 257, not clip at 255.
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode in ("I", "F"):
        return _stretch_to_l(img)
    try:
        return img.convert("RGB")  # YCbCr, LAB, HSV and other colour spaces
    except ValueError as exc:
        raise ImageError(f"Pictures in the {mode} colour mode are not supported.", "unsupported") from exc


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Use the embedded colour profile where there is one, as print files have.

    Pillow's plain conversion ignores profiles and gives washed-out colours for
    most CMYK files. (Pillow already undoes Adobe's inverted CMYK JPEGs on load.)
    """
    profile = img.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile: fall back to the plain conversion
    return img.convert("RGB")


def _stretch_to_l(img: Image.Image) -> Image.Image:
    """32-bit integer or float grey, whose range the mode does not say.

    Keep the common ranges as they are meant (0..1 floats, 8-bit and 16-bit
    integers) and stretch anything else from its darkest to its lightest pixel.
    """
    low, high = img.getextrema()
    if low >= 0 and high <= 1 and img.mode == "F":
        scale, offset = 255, 0
    elif low >= 0 and high <= 255:
        scale, offset = 1, 0
    elif low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0
    elif high > low:
        scale, offset = 255 / (high - low), -low * 255 / (high - low)
    else:
        scale, offset = 0, 0
    # point() on I/F accepts exactly this linear form; the conversion to L then rounds.
    return img.point(lambda v: v * scale + offset).convert("L")
