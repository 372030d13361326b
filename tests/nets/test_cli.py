"""`python -m nets` and scripts/bench.py, run as a person would: in a subprocess."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nets.cli import ProgressBar

ROOT = Path(__file__).resolve().parents[2]
CONTENT_SIZE = (48, 32)  # 3:2, and not a multiple of the networks' strides


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run("-m", "nets", *args)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    content = Image.effect_mandelbrot(CONTENT_SIZE, (-2.0, -1.0, 1.0, 1.0), 32).convert("RGB")
    style = Image.effect_noise((40, 40), 60).convert("RGB")
    paths = {"content": folder / "content.jpg", "style": folder / "style.png", "pdf": folder / "paper.pdf"}
    content.save(paths["content"])
    style.save(paths["style"])
    paths["pdf"].write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    return paths


@pytest.mark.parametrize("command, extension, expected_format, scale", [
    (["style", "{content}", "--style", "{style}"], ".png", "PNG", 1),
    (["style", "{content}", "--style", "{style}", "--quality", "--steps", "1", "--preserve-colors"], ".jpg",
     "JPEG", 1),
    (["season", "{content}", "--to", "winter"], ".webp", "WEBP", 1),
    (["paint", "{content}", "--as", "vangogh"], ".png", "PNG", 1),
    (["upscale", "{content}", "--model", "general", "--scale", "2", "--tile", "24", "--denoise", "0.3"], ".png",
     "PNG", 2),
])
def test_each_command_writes_a_picture_of_the_same_shape(command, extension, expected_format, scale,
                                                         pictures, weights_dir, tmp_path):
    out = tmp_path / f"out{extension}"
    args = [part.format(**pictures) for part in command]
    done = run_cli(*args, "-o", str(out), "--weights", str(weights_dir), "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as written:
        assert written.format == expected_format
        assert written.size == (CONTENT_SIZE[0] * scale, CONTENT_SIZE[1] * scale)
    assert "wrote" in done.stderr and "100%" in done.stderr  # the progress bar reached the end


def test_max_side_shrinks_first_and_says_so(pictures, weights_dir, tmp_path):
    out = tmp_path / "small.png"
    done = run_cli("season", str(pictures["content"]), "--to", "summer", "-o", str(out),
                   "--weights", str(weights_dir), "--device", "cpu", "--threads", "1", "--max-side", "24")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (24, 16)
    assert "reduced" in done.stderr


@pytest.mark.parametrize("args", [
    ["style", "{missing}", "--style", "{style}", "-o", "{out}.png"],           # no such file
    ["paint", "{pdf}", "--as", "monet", "-o", "{out}.png"],                    # not a picture
    ["upscale", "{content}", "--scale", "3", "-o", "{out}.png"],               # bad choice
    ["style", "{content}", "--style", "{style}", "--strength", "2", "-o", "{out}.png"],  # out of range
    ["style", "{content}", "--style", "{style}", "--steps", "5", "-o", "{out}.png"],     # --steps without --quality
    ["season", "{content}", "--to", "autumn", "-o", "{out}.png"],              # unknown season
    ["season", "{content}", "--to", "winter", "-o", "{out}.gif"],              # output type we do not write
    ["season", "{content}", "--to", "winter", "-o", "{out}.png", "--weights", "{missing}"],  # no weights folder
    ["upscale", "{content}", "-o", "{out}.png", "--weights", "{empty}", "--device", "cpu"],  # weights missing
    ["style"],                                                                  # nothing at all
])
def test_bad_input_is_one_line_and_exit_2(args, pictures, tmp_path):
    (tmp_path / "empty").mkdir()
    names = {**pictures, "missing": tmp_path / "nothing-here.jpg", "out": tmp_path / "out",
             "empty": tmp_path / "empty"}
    done = run_cli(*[part.format(**names) for part in args])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("out*"))


def test_progress_bar_redraws_one_line_and_ends_it():
    stream = io.StringIO()
    bar = ProgressBar("upscale", stream)
    for done in range(1, 5):
        bar(done, 4)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rupscale [") and text.endswith("\n")
    assert text.count("\n") == 1
    assert "100%  4/4" in text


@pytest.mark.slow
def test_bench_quick_json(weights_dir):
    done = run("scripts/bench.py", "--quick", "--json", "--only", "style,upscale_tiled",
               "--weights", str(weights_dir), "--threads", "1", timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["machine"]["torch"] and report["machine"]["cores"] >= 1
    rows = {row["operation"]: row for row in report["rows"]}
    assert set(rows) == {"style", "upscale_tiled"}
    for row in rows.values():
        assert row["error"] is None
        assert row["median"] > 0 and len(row["timings"]) == 1
        assert row["peak_rss_bytes"] > 50_000_000  # at least the interpreter, torch and a model
    width, height = map(int, rows["upscale_tiled"]["input"].split("x"))
    assert rows["upscale_tiled"]["output"] == f"{width * 4}x{height * 4}"
    assert rows["style"]["output"] == rows["style"]["input"]


def test_compare_writes_one_sheet_and_before_after_needs_no_weights(pictures, weights_dir, tmp_path):
    sheet = tmp_path / "sheet.png"
    done = run_cli("compare", str(pictures["content"]), "-o", str(sheet), "--models", "general,anime", "--side", "16",
                   "--scale", "3", "--weights", str(weights_dir), "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    with Image.open(sheet) as written:   # the original and two models, 48 px panels under their labels
        assert written.size == (2 * 48 + 3 * 8, 2 * (48 + 30) + 3 * 8)

    big = tmp_path / "big.png"
    with Image.open(pictures["content"]) as content:
        content.resize((CONTENT_SIZE[0] * 4, CONTENT_SIZE[1] * 4)).save(big)
    crop = tmp_path / "crop.jpg"
    done = run_cli("before-after", str(pictures["content"]), str(big), "-o", str(crop), "--side", "64",
                   "--weights", str(tmp_path / "no-weights-here"))
    assert done.returncode == 0, done.stderr
    with Image.open(crop) as written:
        assert written.size == (2 * 64 + 3 * 8, 64 + 30 + 2 * 8)
    done = run_cli("before-after", str(big), str(pictures["content"]), "-o", str(crop))
    assert done.returncode == 2 and "give the original first" in done.stderr
    done = run_cli("compare", str(pictures["content"]), "-o", str(sheet), "--models", "general,x8")
    assert done.returncode == 2 and "models are" in done.stderr
