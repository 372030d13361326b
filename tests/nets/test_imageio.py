"""nets.imageio on pictures made here, one per way a file can be odd or wrong."""
import io
import struct
import sys
import zlib

import pytest
from PIL import Image

from nets import imageio
from nets.errors import ImageError


def saved(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def noise(size=(64, 48), mode="RGB") -> Image.Image:
    """Random pixels, so a JPEG of it has real data all the way down."""
    return Image.effect_noise(size, 80).convert(mode)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of pixel data.

    Costs nothing to make however large it claims to be: the loader must refuse
    it from the header, before decoding.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def error_code(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageError) as caught:
        imageio.load_image(data, **kwargs)
    assert caught.value.message and "\n" not in caught.value.message
    return caught.value.code


# --- files that must be refused -------------------------------------------

def test_empty_bytes():
    assert error_code(b"") == "empty"


def test_pdf_is_not_an_image():
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    assert error_code(pdf) == "not_image"


def test_truncated_jpeg_fails_instead_of_loading_grey():
    whole = saved(noise((256, 192)), "JPEG", quality=90)
    assert imageio.load_image(whole).size == (256, 192)
    assert error_code(whole[: len(whole) // 2]) == "corrupt"


def test_damaged_png_signature_is_corrupt_not_unknown():
    assert error_code(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10) == "corrupt"


def test_format_pillow_knows_but_we_do_not_accept():
    icon = saved(Image.new("RGB", (16, 16), "red"), "ICO")
    assert error_code(icon) == "unsupported"


def test_huge_header_is_refused_as_a_bomb_before_decoding():
    # 1.6 gigapixels in a file of under 100 bytes: Pillow's guard names it a bomb.
    assert error_code(png_header_only(40_000, 40_000)) == "bomb"


def test_over_the_pixel_cap_from_the_header():
    # 56 MP: under Pillow's guard (89 MP), over our cap (50 MP).
    data = png_header_only(8_000, 7_000)
    assert error_code(data) == "too_large"
    assert error_code(imageio.encode_png(Image.new("RGB", (20, 20))), max_pixels=399) == "too_large"


def test_pillow_bomb_warning_becomes_an_error():
    # 100 MP is between Pillow's limit and twice it, where Pillow only warns.
    limit = Image.MAX_IMAGE_PIXELS
    assert limit < 100_000_000 < 2 * limit
    assert error_code(png_header_only(10_000, 10_000), max_pixels=10**9) == "bomb"


def test_errors_do_not_touch_pillow_globals():
    from PIL import ImageFile
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError):
        imageio.load_image(png_header_only(40_000, 40_000))
    assert Image.MAX_IMAGE_PIXELS == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- modes normalised -------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_accepted_modes_stay(mode):
    img = imageio.load_image(saved(noise(mode=mode), "PNG"))
    assert img.mode == mode and img.size == (64, 48)


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour():
    # Pillow writes CMYK JPEGs the Adobe way (inverted); red is C=0 M=100% Y=100% K=0.
    data = saved(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    img = imageio.load_image(data)
    assert img.mode == "RGB"
    red, green, blue = img.getpixel((16, 16))
    assert red > 240 and green < 15 and blue < 15


def test_16_bit_png_is_scaled_not_clipped():
    grey16 = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 32896, 65535)):
        grey16.putpixel((x, 0), value)
    img = imageio.load_image(saved(grey16, "PNG"))
    assert img.mode == "L"
    assert [img.getpixel((x, 0)) for x in range(3)] == [0, 128, 255]


def test_float_tiff_in_0_to_1_is_scaled():
    grey = Image.new("F", (2, 1))
    grey.putpixel((0, 0), 0.0)
    grey.putpixel((1, 0), 1.0)
    img = imageio.load_image(saved(grey, "TIFF"))
    assert img.mode == "L" and [img.getpixel((0, 0)), img.getpixel((1, 0))] == [0, 255]


def test_one_bit_becomes_grey():
    img = imageio.load_image(saved(Image.new("1", (8, 8), 1), "PNG"))
    assert img.mode == "L" and img.getpixel((0, 0)) == 255


def test_palette_with_transparency_keeps_it():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.putpixel((0, 0), 1)
    img = imageio.load_image(saved(pal, "PNG", transparency=1))
    assert img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((5, 5)) == (255, 0, 0, 255)


def test_palette_without_transparency_is_rgb():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 200, 30])
    img = imageio.load_image(saved(pal, "PNG"))
    assert img.mode == "RGB" and img.getpixel((3, 3)) == (10, 200, 30)


@pytest.mark.parametrize("fmt, params", [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_animation_gives_its_first_frame(fmt, params):
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "blue", "lime")]
    data = saved(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    assert imageio.probe(data).is_animated
    img = imageio.load_image(data)
    assert img.mode in ("RGB", "RGBA") and img.size == (20, 10)
    assert img.getpixel((5, 5))[:3] == (255, 0, 0)


def test_exif_orientation_is_applied():
    # Stored 40 wide, 20 high, with a red left half; orientation 6 means "turn 90 degrees clockwise".
    stored = Image.new("RGB", (40, 20), "blue")
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = saved(stored, "JPEG", exif=exif.tobytes(), quality=95)
    img = imageio.load_image(data)
    assert img.size == (20, 40)
    assert img.getpixel((10, 5))[0] > 200  # the left half is now on top
    info = imageio.probe(data)
    assert (info.format, info.width, info.height, info.is_animated) == ("JPEG", 20, 40, False)


def test_max_side_hint_decodes_a_jpeg_smaller():
    data = saved(noise((800, 600)), "JPEG")
    img = imageio.load_image(data, max_side=200)
    assert 200 <= max(img.size) < 800
    assert img.size[0] * 3 == img.size[1] * 4


def test_imageio_does_not_import_torch():
    import subprocess
    code = "import sys, nets.imageio; print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


# --- resizing and encoding --------------------------------------------------

def test_fit_within_keeps_the_aspect_ratio():
    img, shrunk = imageio.fit_within(Image.new("RGB", (400, 300)), 100)
    assert shrunk and img.size == (100, 75)
    img, shrunk = imageio.fit_within(Image.new("RGB", (90, 300)), 100)
    assert shrunk and img.size == (30, 100)


def test_fit_within_never_enlarges():
    small = Image.new("RGB", (50, 40))
    assert imageio.fit_within(small, 100) == (small, False)
    assert imageio.fit_within(small, None) == (small, False)


def test_encode_jpeg_puts_transparency_on_white():
    clear = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    back = Image.open(io.BytesIO(imageio.encode_jpeg(clear)))
    assert back.format == "JPEG" and back.mode == "RGB"
    assert min(back.getpixel((8, 8))) > 250


def test_encode_png_round_trips():
    img = noise(mode="RGBA")
    back = imageio.load_image(imageio.encode_png(img))
    assert back.mode == "RGBA" and back.tobytes() == img.tobytes()


def test_progressive_jpeg_with_a_flood_of_scans_is_refused_fast():
    # Each scan is a full pass over the picture for libjpeg: a few bytes per scan, seconds each.
    import time
    data = saved(Image.linear_gradient("L").resize((2000, 2000)), "JPEG", progressive=True)
    assert imageio.load_image(data).size == (2000, 2000)
    last_scan = data[data.rindex(b"\xff\xda"):-2]
    flood = data[:-2] + last_scan * 200 + data[-2:]
    began = time.monotonic()
    assert error_code(flood) == "corrupt"
    assert time.monotonic() - began < 1


def test_exif_thumbnail_scans_are_not_counted():
    from nets.imageio import _jpeg_scans
    thumbnail = saved(Image.new("RGB", (8, 8), "red"), "JPEG", progressive=True)
    app1 = b"Exif\0\0" + thumbnail * 20  # 200 scans inside one APP1 segment
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    photo = saved(Image.new("RGB", (16, 16), "blue"), "JPEG")
    assert _jpeg_scans(photo[:2] + segment + photo[2:], 100) == 1


def rle8_bmp(side: int, runs: bytes) -> bytes:
    """A run-length BMP (Pillow decodes these in Python): `runs` are (count, colour) pairs."""
    pixels = runs + b"\x00\x01"  # end of picture
    palette = bytes(range(256)) * 4
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def test_run_length_bmp_loads_when_small_and_is_refused_when_slow():
    row = b"\x0a\x07" + b"\x00\x00"  # ten pixels of colour 7, end of line
    assert imageio.load_image(rle8_bmp(10, row * 10)).size == (10, 10)
    assert error_code(rle8_bmp(2000, b"\x01\x07" * 1_500_000)) == "unsupported"
