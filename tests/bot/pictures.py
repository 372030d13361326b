"""Pictures the bot tests send: generated, so the suite needs no files."""
import io

from PIL import Image


def picture(size=(160, 120), fmt="JPEG", seed=0) -> bytes:
    """A gradient with some structure, so encoders and networks see more than one flat colour."""
    width, height = size
    img = Image.new("RGB", size)
    img.putdata([((x * 255 // width + seed * 40) % 256, (y * 255 // height) % 256, (x * y + seed) % 256)
                 for y in range(height) for x in range(width)])
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()
