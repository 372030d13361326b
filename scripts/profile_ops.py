"""Where each network's time goes on this CPU, by precision and memory layout.

    python scripts/profile_ops.py --weights .cache/synthetic-weights
    python scripts/profile_ops.py --only cyclegan,upscale --top 6

For every network the engine runs (at the size the bench times it), in fp32
and bf16 (bf16 only where the processor computes it natively) and in the
default (NCHW) and channels-last layouts: the median forward time of a few
runs, then a torch.profiler table of the ops that took the most time in the
layout the catalog chooses. The bench times whole operations; this is what
picked each model's layout (`channels_last` in nets/catalog.py) and shows
where precision pays and where it does not (normalisation, layout
conversions, element-wise work). Synthetic weights time like real ones.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from nets import catalog, precision as precisions  # noqa: E402
from nets.weights import load_model  # noqa: E402

# name -> (models run in order, input width, height); sizes are the bench's 1024x768 rows,
# the upscalers' the sizes their rows use (compact 512x512 -> 2048, x4plus 192x144).
NETWORKS = {
    "style": (("vgg19_normalised",), 1024, 768),          # the encoder: most of AdaIN's time
    "decoder": (("adain_decoder",), 128, 96),             # its input: relu4_1 features at 1/8 size
    "cyclegan": (("cyclegan_summer2winter",), 1024, 768),
    "upscale": (("realesr_general_x4v3",), 512, 512),
    "x4plus": (("realesrgan_x4plus",), 192, 144),
    "lite": (("lite_style_transform",), 640, 480),
}


def _inputs(name: str, width: int, height: int, dtype):
    if name == "decoder":
        return (torch.rand(1, 512, height, width, dtype=dtype),)
    if name == "lite":
        return (torch.rand(1, 3, height, width, dtype=dtype), torch.rand(1, 100, dtype=dtype))
    return (torch.rand(1, 3, height, width, dtype=dtype),)


def _time(model, inputs, runs: int) -> float:
    with torch.inference_mode():
        model(*inputs)   # warm-up: oneDNN picks and caches its kernels on the first call
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            model(*inputs)
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _profile_table(model, inputs, top: int) -> str:
    with torch.inference_mode():
        model(*inputs)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(*inputs)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path(".cache/synthetic-weights"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=8, help="ops per profile table (0: no tables)")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(NETWORKS))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    flag = precisions.native_bf16()
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if flag else {})}
    names = args.only.split(",") if args.only else list(NETWORKS)
    print(f"torch {torch.__version__}, {args.threads} threads, native bf16: {flag or 'no'}; "
          f"median of {args.runs} forward passes after a warm-up")
    print(f"{'network':10} {'input':>9} " + " ".join(f"{p + ' ' + l:>16}" for p in dtypes
                                                       for l in ("nchw", "channels-last")))
    tables = []
    for name in names:
        models, width, height = NETWORKS[name]
        entry = catalog.entry(models[0])
        cells = []
        for label, dtype in dtypes.items():
            for channels_last in (False, True):
                model = load_model(args.weights, entry.name, "cpu", dtype)
                layout = torch.channels_last if channels_last else torch.contiguous_format
                model = model.to(memory_format=layout)
                inputs = tuple(t.to(memory_format=layout) if t.dim() == 4 else t
                               for t in _inputs(name, width, height, dtype))
                cells.append(f"{_time(model, inputs, args.runs):15.3f}s")
                if args.top and channels_last == entry.channels_last:
                    tables.append((f"{name} {label} {'channels-last' if channels_last else 'nchw'}",
                                   _profile_table(model, inputs, args.top)))
                del model
        print(f"{name:10} {f'{width}x{height}':>9} " + " ".join(cells), flush=True)
    for title, table in tables:
        print(f"\n## {title} (the catalog's layout)\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
