"""The picture door under fuzzing: every damaged file ends as a picture or an ImageError.

A few thousand fixed cases run here; STYLEBOT_FUZZ_CASES=50000 runs more (the
same first ones, then new ones). A failure names the case; rebuild and run it
alone with `python -m tests.nets.imageio_fuzz NUMBER`.
"""
import io
import os
import struct
import subprocess
import sys

import pytest
from PIL import Image

from nets import imageio
from nets.errors import ImageError
from tests.nets import imageio_fuzz as fuzz

CASES = int(os.environ.get("STYLEBOT_FUZZ_CASES", "3000"))


def test_seeds_cover_the_formats_people_send():
    names = [name for name, _ in fuzz.seeds()]
    formats = {name.split()[0] for name in names}
    assert {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "TGA", "PPM", "PCX"} <= formats
    for variant in ("PNG I;16", "JPEG progressive", "GIF animated", "TIFF multi-page", "TIFF tiff_lzw"):
        assert variant in names


def test_every_seed_the_door_accepts_loads_as_a_picture():
    # The door calls any exception raised inside Pillow a damaged file; this keeps it honest:
    # a valid file that failed because we used Pillow wrongly would show up here.
    accepted = [(name, data) for name, data in fuzz.seeds()
                if name.split()[0] in imageio.READABLE_FORMATS + ("MPO",)]
    assert len(accepted) > 30
    for name, data in accepted:
        img = imageio.load_image(data)
        assert img.mode in fuzz.NORMAL_MODES and img.width > 0, name
        assert imageio.probe(data).format, name


def test_cases_are_reproducible():
    assert fuzz.make_case(1234) == fuzz.make_case(1234)
    assert fuzz.make_case(1234).data != fuzz.make_case(1235).data


def test_fuzzed_pictures_end_as_a_picture_or_an_image_error():
    problems = fuzz.run_cases(range(CASES))
    report = [f"{fuzz.make_case(n).describe()}\n    {problem}" for n, problem in sorted(problems.items())]
    assert not report, (f"{len(report)} of {CASES} cases broke the door "
                        "(rerun one: python -m tests.nets.imageio_fuzz NUMBER):\n" + "\n".join(report[:20]))


# --- the runner itself notices what it must ------------------------------------

def test_the_runner_names_a_case_that_escapes(monkeypatch):
    # A bare exception from inside Pillow used to escape probe on a damaged GIF; the checker
    # must call such an escape a failure, not a pass.
    def escaping(data, **kwargs):
        struct.unpack("<H", b"")

    monkeypatch.setattr(imageio, "probe", escaping)
    problem = fuzz.check(fuzz.seeds()[0][1])
    assert problem and "struct.error" in problem


def test_the_runner_isolates_a_case_that_hangs_or_kills_its_child(monkeypatch):
    # A child whose case 1 hangs, as an endless decode would, and whose case 3 ends the
    # process, as a crash in a decoder would; the cases around them still run.
    # The other cases are empty files (an ImageError, so "ok"), and no seeds are made: quick.
    code = ("import os, time; from tests.nets import imageio_fuzz as f\n"
            "f.seeds = lambda: ()\n"
            "f.make_case = lambda n: (time.sleep(60) if n == 1 else os._exit(3) if n == 3\n"
            "                         else f.Case(n, '', (), b''))\n"
            "f._child()")
    monkeypatch.setattr(fuzz, "_spawn", lambda: subprocess.Popen(
        [sys.executable, "-c", code], cwd=fuzz._ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, bufsize=1))
    problems = fuzz.run_cases(range(5), case_seconds=1)
    assert sorted(problems) == [1, 3]
    assert "took over 1 s" in problems[1] and "exit 3" in problems[3]


# --- what the fuzz found, kept as plain tests ------------------------------------

def test_gif_cut_in_a_frame_header_is_corrupt_not_struct_error():
    # A GIF cut just after the second frame's descriptor marker: is_animated made Pillow raise
    # struct.error, which escaped probe and reached users as "something went wrong".
    frames = [Image.new("RGB", (20, 12), colour) for colour in ("red", "blue", "lime")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = out.getvalue()
    second = data.index(b",", data.index(b",\x00\x00") + 1)  # the second image descriptor
    with pytest.raises(ImageError) as caught:
        imageio.probe(data[:second + 1])
    assert caught.value.code == "corrupt"
    assert isinstance(caught.value.__cause__, struct.error)


def test_damaged_avif_is_corrupt_not_runtime_error():
    # The AVIF binding raises RuntimeError, a type no list of "decode errors" had.
    seeds = dict(fuzz.seeds())
    if "AVIF RGB" not in seeds:
        pytest.skip("this Pillow cannot write AVIF")
    data = seeds["AVIF RGB"]
    with pytest.raises(ImageError) as caught:
        imageio.load_image(data[:208] + b"\xff\x7f" + data[210:])
    assert caught.value.code == "corrupt"


def test_a_bug_in_our_code_is_not_called_a_damaged_file(monkeypatch):
    def broken(img):
        raise TypeError("our bug")

    monkeypatch.setattr(imageio, "_normalise_mode", broken)
    with pytest.raises(TypeError, match="our bug"):
        imageio.load_image(imageio.encode_png(Image.new("RGB", (4, 4))))
