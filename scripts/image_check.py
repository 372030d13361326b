"""The Docker image's self-check: run at build time, it fails the build on a broken image.

    python scripts/image_check.py [--cuda] [--weights DIR] [--presets DIR]

Always: the bot's modules import, the preset paintings load, and the engine
runs each kind of network on a small picture, on the CPU (a build has no GPU).
With --cuda (the CUDA image) first: torch is a CUDA build, it has cuDNN, and
NVIDIA's libraries that came with it load. A build machine has no GPU and no
driver, so this is as far as a build can see: an index that served the +cpu
wheel, or a pruning step that removed a CUDA library, fails here rather than
on the first real GPU.
"""
from __future__ import annotations

import argparse
import ctypes
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/image_check.py` from anywhere (the image: /app)
    sys.path.insert(0, str(ROOT))

# NVIDIA's libraries torch's CUDA build loads (pip wheels nvidia-*: site-packages/nvidia/*/lib;
# CUDA 13 wheels put them under nvidia/cu13/lib). One of each must be there and load.
NVIDIA_LIBRARIES = ("libcudart", "libcublas", "libcudnn")


class CheckFailed(Exception):
    """One line that says what is wrong with the image."""


def check_cuda_build() -> list[str]:
    """What the CUDA build has, one line each; CheckFailed when it is not one."""
    import torch

    if torch.version.cuda is None:
        raise CheckFailed(f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None): the "
                          "index gave the +cpu wheel; build with a CUDA index (TORCH_INDEX_URL)")
    cudnn = torch.backends.cudnn.version()
    if cudnn is None:
        raise CheckFailed(f"torch {torch.__version__} (CUDA {torch.version.cuda}) has no cuDNN")
    lines = [f"torch {torch.__version__}: CUDA {torch.version.cuda}, cuDNN {cudnn}",
             f"kernels for: {torch._C._cuda_getArchFlags()}"]
    site = Path(torch.__file__).resolve().parent.parent
    lines += load_nvidia_libraries(site)
    return lines


def load_nvidia_libraries(site: Path) -> list[str]:
    """Load one of each NVIDIA_LIBRARIES from site-packages/nvidia with ctypes; CheckFailed if one is missing
    or does not load (a library it needs is missing)."""
    found = []
    for name in NVIDIA_LIBRARIES:
        candidates = sorted(p for p in site.glob(f"nvidia/**/lib/{name}.so*") if p.is_file())
        if not candidates:
            raise CheckFailed(f"{name}.so is not in {site / 'nvidia'}: the CUDA libraries did not install "
                              "or were pruned")
        try:
            ctypes.CDLL(str(candidates[0]))
        except OSError as exc:
            raise CheckFailed(f"{candidates[0].relative_to(site)} does not load: {exc}") from None
        found.append(f"loaded {candidates[0].relative_to(site)}")
    return found


def check_engine(weights: Path, presets: Path) -> None:
    from PIL import Image

    import bot.app  # noqa: F401  (the bot's modules import)
    import bot.jobs.celery_queue  # noqa: F401  (both backends import in the image)
    import bot.jobs.celery_worker  # noqa: F401
    from bot.presets import load_paintings
    from nets.compare import before_after
    from nets.engine import Engine

    if not load_paintings(presets):
        raise CheckFailed(f"no preset paintings in {presets}")
    img = Image.linear_gradient("L").convert("RGB").resize((96, 64))
    engine = Engine(weights, device="cpu", max_side=64)
    engine.stylize(img, img, style_key="check")
    engine.stylize_quality(img, img, steps=2)
    engine.translate(img, "monet")
    engine.upscale(img.resize((24, 16)))
    engine.upscale_compare(img, labels=["general", "x4plus", "anime"])   # every upscaler, and numpy's lazy parts
    engine.stylize(img, img, mix_with=img, mix=0.5)
    before_after(img, img.resize((384, 256)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", action="store_true", help="also require a CUDA build of torch")
    parser.add_argument("--weights", type=Path, default=Path("/opt/stylebot/weights"))
    parser.add_argument("--presets", type=Path, default=Path("/opt/stylebot/presets"))
    args = parser.parse_args(argv)
    try:
        if args.cuda:
            for line in check_cuda_build():
                print(line)
        check_engine(args.weights, args.presets)
    except CheckFailed as exc:
        print(f"image check failed: {exc}", file=sys.stderr)
        return 1
    print("image check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
