"""`python -m nets`: the engine from a shell, one picture at a time.

    python -m nets style photo.jpg --style starry.jpg -o out.png
    python -m nets season photo.jpg --to winter -o out.jpg
    python -m nets paint photo.jpg --as monet -o out.webp
    python -m nets upscale small.png -o big.png --scale 4
    python -m nets sheet photo.jpg --styles a.jpg b.jpg c.jpg -o sheet.png
    python -m nets compare small.png -o sheet.png --scale 4
    python -m nets before-after small.png big.png -o crop.jpg

Anything wrong with what was asked (a missing file, a file that is not a
picture, a bad option, missing weights, an output type we cannot write) ends
with one `error: ...` line on stderr and exit status 2. Everything is checked
before torch is imported, so a mistake costs a fraction of a second.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from PIL import Image

from nets import imageio
from nets.catalog import FAST_STYLES  # torch-free: a bad choice fails before torch loads
from nets.compare import COMPARE_SIDE, COMPARED, CROP_SIDE, before_after  # torch-free
from nets.errors import NetsError
from nets.precision import PRECISIONS  # torch-free: a bad choice fails before torch loads

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C



def _encode_webp(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="WEBP", quality=90)  # lossy, like JPEG, but keeps transparency
    return out.getvalue()


# Output extension -> how to encode.
ENCODERS: dict[str, Callable[[Image.Image], bytes]] = {
    ".png": imageio.encode_png,
    ".jpg": imageio.encode_jpeg,
    ".jpeg": imageio.encode_jpeg,
    ".webp": _encode_webp,
}

SEASONS = {"winter": "summer2winter", "summer": "winter2summer"}
PAINTERS = ("monet", "vangogh", "cezanne", "ukiyoe")
UPSCALE_MODELS = ("auto", "general", "x4plus", "anime")


class BadInput(Exception):
    """A mistake in the request; shown as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse prints its whole usage block; one line is easier to read and to grep.
        self.exit(EXIT_BAD_INPUT, f"error: {message}\n")


def _device(text: str) -> str:
    """auto, cpu, cuda or cuda:N; whether GPU N exists is the engine's to say."""
    kind, colon, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (colon and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def _number(kind: type, low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse type that also checks the range, so the message names the limit."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {limit}")
        return value
    parse.__name__ = kind.__name__  # argparse uses it in "invalid int value" messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m nets",
                     description="Turn photos into art, or make them larger, with stylebot's engine.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = _Parser(add_help=False)
    common.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="where to write the result; .png, .jpg or .webp")
    common.add_argument("--weights", type=Path, metavar="DIR",
                        default=Path(os.environ.get("WEIGHTS_DIR") or "weights"),
                        help="folder of NAME.safetensors files (default: $WEIGHTS_DIR or ./weights)")
    common.add_argument("--device", type=_device, default="auto", metavar="DEVICE",
                        help="auto, cpu, cuda or cuda:N: where the networks run "
                             "(default: auto, a usable GPU when there is one)")
    common.add_argument("--max-side", type=_number(int, 16), metavar="PX",
                        help="shrink the input first so its longer side is at most PX "
                             "(default: the engine's, 1024)")
    common.add_argument("--threads", type=_number(int, 1), metavar="N",
                        help="CPU threads for torch (default: all cores)")
    common.add_argument("--precision", choices=PRECISIONS, default=os.environ.get("CPU_PRECISION") or "auto",
                        help="CPU number format: bf16 where the processor computes it natively, fp32 elsewhere "
                             "(default: auto, or $CPU_PRECISION)")

    style = commands.add_parser("style", parents=[common], help="paint a photo in the style of another picture")
    style.add_argument("content", type=Path, metavar="CONTENT", help="the photo")
    style.add_argument("--style", required=True, type=Path, help="the picture whose style to take")
    style.add_argument("--quality", action="store_true",
                       help="optimise the picture itself instead of one network pass: better, much slower")
    style.add_argument("--steps", type=_number(int, 1, 5000), metavar="N",
                       help="optimisation steps of --quality (default: the engine's)")
    style.add_argument("--strength", type=_number(float, 0.0, 1.0), default=1.0, metavar="A",
                       help="0 keeps the photo, 1 is full style (default 1)")
    style.add_argument("--preserve-colors", action="store_true", help="keep the photo's own colours")
    style.add_argument("--model", choices=FAST_STYLES, metavar="MODEL",
                       help="the fast mode's network: lite (Magenta's small network, fast on a CPU) or adain "
                            "(VGG19 + decoder, finer, ten times the work) (default: lite on the CPU, adain on CUDA, "
                            "or $FAST_STYLE)")

    sheet = commands.add_parser("sheet", parents=[common],
                                help="one sheet of small previews: the photo in each of several styles")
    sheet.add_argument("content", type=Path, metavar="CONTENT")
    sheet.add_argument("--styles", required=True, nargs="+", type=Path, metavar="STYLE",
                       help="the style pictures; each tile is labelled with its number and file name")
    sheet.add_argument("--model", choices=FAST_STYLES, metavar="MODEL", help="as for style")

    season = commands.add_parser("season", parents=[common], help="turn summer into winter or back (CycleGAN)")
    season.add_argument("content", type=Path, metavar="CONTENT")
    season.add_argument("--to", required=True, choices=tuple(SEASONS), help="the season to show")

    paint = commands.add_parser("paint", parents=[common], help="repaint a photo as a painter would (CycleGAN)")
    paint.add_argument("content", type=Path, metavar="CONTENT")
    paint.add_argument("--as", dest="painter", required=True, choices=PAINTERS, help="whose manner")

    upscale = commands.add_parser("upscale", parents=[common], help="make a picture 2, 3 or 4 times larger (Real-ESRGAN)")
    upscale.add_argument("content", type=Path, metavar="IN")
    upscale.add_argument("--model", choices=UPSCALE_MODELS, default="auto",
                         help="general: fast, photos; x4plus: slower, sharper; anime: drawings "
                              "(default auto: general on CPU, x4plus on CUDA)")
    upscale.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="how many times larger (default 4)")
    upscale.add_argument("--tile", type=_number(int, 0), metavar="N",
                         help="work in N px tiles to bound memory; 0 for none (default: the engine chooses)")
    upscale.add_argument("--denoise", type=_number(float, 0.0, 1.0), default=0.5, metavar="D",
                         help="general model only: 0 keeps grain, 1 removes it (default 0.5)")

    compare = commands.add_parser("compare", parents=[common],
                                  help="one sheet: the most detailed part of a picture as each upscaling model "
                                       "makes it, beside the original, at 1:1 pixels")
    compare.add_argument("content", type=Path, metavar="IN")
    compare.add_argument("--models", type=_models, default=",".join(COMPARED), metavar="M,M",
                         help=f"which models, in order (default {','.join(COMPARED)})")
    compare.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="as for upscale (default 4)")
    compare.add_argument("--denoise", type=_number(float, 0.0, 1.0), default=0.5, metavar="D",
                         help="as for upscale (default 0.5)")
    compare.add_argument("--side", type=_number(int, 8, 512), default=COMPARE_SIDE, metavar="PX",
                         help=f"the region's side in input pixels (default {COMPARE_SIDE})")

    before_after = commands.add_parser("before-after", parents=[common],
                                       help="the most detailed part of an upscaled picture at 1:1, beside the same "
                                            "part of the original enlarged (no network: both pictures are given)")
    before_after.add_argument("content", type=Path, metavar="ORIGINAL")
    before_after.add_argument("result", type=Path, metavar="UPSCALED")
    before_after.add_argument("--side", type=_number(int, 16, 2048), default=CROP_SIDE, metavar="PX",
                              help=f"the crop's side in the upscaled picture's pixels (default {CROP_SIDE})")
    return parser


def _models(text: str) -> list[str]:
    models = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in models if name not in UPSCALE_MODELS[1:]]
    if unknown or not models:
        raise argparse.ArgumentTypeError(f"{text!r}: models are {', '.join(UPSCALE_MODELS[1:])}, comma-separated")
    return models


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        encode = _encoder_for(args.output)
        operation = _prepare(args)
        # before-after runs no network, so it needs no weights and no torch
        engine = None if args.command == "before-after" else _engine(args)
        bar = ProgressBar(args.command)
        try:
            result = operation(engine, bar)
        finally:
            bar.close()
        encoded = encode(result.image)
    except (BadInput, NetsError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        args.output.write_bytes(encoded)
    except OSError as exc:  # a full disk, no permission
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    width, height = result.image.size
    note = "; the input was reduced first (see --max-side)" if result.downsized else ""
    how = (f" in {result.precision} ({_precision_note(engine, result, args.command == 'style' and args.quality)})"
           if engine is not None else "")
    print(f"wrote {args.output} ({width}x{height}) in {result.seconds:.1f} s{how}{note}", file=sys.stderr)
    return 0


def _precision_note(engine, result, quality: bool) -> str:
    """Why the op ran in the precision it did: quality mode and the lite network keep their own."""
    if quality:
        return engine.quality_precision_reason
    if result.precision == engine.precision:
        return engine.precision_reason
    return f"the lite network computes in float32 on a CPU; the engine's other networks in {engine.precision}"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _encoder_for(output: Path) -> Callable[[Image.Image], bytes]:
    encode = ENCODERS.get(output.suffix.lower())
    if encode is None:
        raise BadInput(f"cannot tell the output type from {output.name!r}: "
                       f"end it in {', '.join(sorted(ENCODERS))}")
    if not output.parent.is_dir():
        raise BadInput(f"the folder for {output} does not exist")
    return encode


def _read_picture(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a picture") from None
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror or exc}") from None
    try:
        return imageio.load_image(data)
    except NetsError as exc:
        raise BadInput(f"{path}: {exc.message}") from None


def _prepare(args: argparse.Namespace):
    """Read the inputs and return the engine call to make, all before torch loads."""
    if args.command == "style" and args.steps is not None and not args.quality:
        raise BadInput("--steps only applies with --quality")
    if args.command == "style" and args.model is not None and args.quality:
        raise BadInput("--model chooses the fast mode's network; quality mode always optimises with VGG19")
    content = _read_picture(args.content)
    max_side = args.max_side
    if args.command == "style":
        style = _read_picture(args.style)
        if args.quality:
            steps = {} if args.steps is None else {"steps": args.steps}
            return lambda engine, bar: engine.stylize_quality(
                content, style, strength=args.strength, preserve_colors=args.preserve_colors,
                max_side=max_side, progress=bar, **steps)
        return lambda engine, bar: engine.stylize(
            content, style, model=args.model, strength=args.strength, preserve_colors=args.preserve_colors,
            max_side=max_side, progress=bar)
    if args.command == "sheet":
        styles = [_read_picture(path) for path in args.styles]
        labels = [path.stem.replace("_", " ") for path in args.styles]
        return lambda engine, bar: engine.preview_sheet(content, styles, labels=labels, model=args.model,
                                                        progress=bar)
    if args.command == "compare":
        return lambda engine, bar: engine.upscale_compare(
            content, models=args.models, scale=args.scale, denoise=args.denoise, side=args.side,
            max_side=max_side, progress=bar)
    if args.command == "before-after":
        result = _read_picture(args.result)
        return lambda engine, bar: _before_after(content, result, args.side)
    if args.command in ("season", "paint"):
        direction = SEASONS[args.to] if args.command == "season" else args.painter
        return lambda engine, bar: engine.translate(content, direction, max_side=max_side, progress=bar)
    return lambda engine, bar: engine.upscale(
        content, model=args.model, scale=args.scale, tile=args.tile, denoise=args.denoise,
        max_side=max_side, progress=bar)


def _before_after(original: Image.Image, result: Image.Image, side: int):
    started = time.perf_counter()
    if result.width < original.width:
        raise BadInput("the upscaled picture is smaller than the original: give the original first")
    # shaped like the engine's Result, without importing torch for it
    return SimpleNamespace(image=before_after(original, result, side=side), downsized=False,
                           seconds=time.perf_counter() - started)


def _engine(args: argparse.Namespace):
    if not args.weights.is_dir():
        raise BadInput(f"weights folder {args.weights} not found: write it with "
                       f"`python scripts/fetch_weights.py --dest {args.weights}` or pass --weights")
    if args.precision not in PRECISIONS:  # from $CPU_PRECISION, which argparse does not check
        raise BadInput(f"CPU_PRECISION must be one of {', '.join(PRECISIONS)}, not {args.precision!r}")
    fast_style = os.environ.get("FAST_STYLE") or None
    if fast_style is not None and fast_style not in FAST_STYLES:
        raise BadInput(f"FAST_STYLE must be one of {', '.join(FAST_STYLES)}, not {fast_style!r}")
    from nets.engine import Engine  # torch loads here, once everything else is known to be good

    return Engine(args.weights, device=args.device, threads=args.threads,
                  fast_style=fast_style, precision=args.precision)


class ProgressBar:
    """`style [#########-----------]  45%  9/20  3.1 s` redrawn in place on stderr.

    Plain text and carriage returns, so it needs no terminal library; redraws
    at most ten times a second so a fast loop does not flood a log.
    """

    WIDTH = 24

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last_drawn = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last_drawn < 0.1 and done < total:
            return
        self.last_drawn = now
        share = min(1.0, done / total) if total > 0 else 0.0
        filled = round(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%}  {done}/{total}  {now - self.started:.1f} s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line, so whatever is printed next starts on its own."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
