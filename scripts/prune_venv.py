"""Shrink the image's venv to what the bot and its workers load. Used by the Dockerfiles only.

    python scripts/prune_venv.py /opt/venv

Run it with the venv's own python after everything is installed. It prints
the venv's size after each step, and fails if the pruned venv can no longer
import and run what the engine and the bot use. The steps:

1. remove what no run-time code path loads: torch's tests, headers and test
   binaries, pip and setuptools, tests of every package, static libraries,
   type stubs, Babel's locale data beyond English and Russian, and the
   libraries that only torch.compile's code generation (triton on CUDA)
   and torch.hub import;
2. strip the symbol tables from shared libraries, except those auditwheel
   patched (their RPATH points into a `*.libs` folder): stripping those
   breaks their program headers ("ELF load command address/offset not
   page-aligned"); and except NVIDIA's, which ship as they came;
3. the workout: import the libraries, run every layer kind the networks
   use, L-BFGS included, and what the weights script does (torch.load of a
   checkpoint, safetensors out and in), with bytecode writing on. What it
   imports is what a worker, the bot and the build import;
4. remove each subpackage the workout never entered (no module of it was
   imported and it holds no native code). Top-level packages stay whole, and
   so do Celery's and its dependencies', and numpy's (KEEP_WHOLE);
5. replace the source of every imported module by its bytecode (a sourceless
   `.pyc`), except the modules whose source a second workout reads as text
   (torch's config modules, `@torch.jit._overload`ed functions: an audit hook
   notes them). What was not imported stays source only, which
   is smaller than bytecode. Workers start without compiling anything, which
   matters because the image's user cannot write bytecode caches.

A traceback from inside a library then shows file and line but not the text.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Relative to site-packages. torch._inductor, torch._dynamo and sympy stay:
# every torch.optim optimizer imports torch._dynamo on first use, and it
# imports them.
UNUSED = [
    "torch/test", "torch/include", "torch/share", "torch/lib/libshm_windows",
    "torch/lib/libjitbackend_test.so", "torch/lib/libtorchbind_test.so",
    "torch/lib/libbackend_with_compiler.so", "torch/lib/libaoti_custom_ops.so",
    "torch/onnx", "torch/utils/tensorboard", "torch/utils/benchmark", "torch/utils/hipify",
    "networkx", "jinja2", "markupsafe", "fsspec", "filelock", "triton",
    "pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth",
]
UNUSED_DISTRIBUTIONS = ("networkx", "jinja2", "markupsafe", "fsspec", "filelock", "triton", "pip", "setuptools")
BABEL_LOCALES = ("root", "en", "ru")
# Packages kept whole, their subpackages too: a Celery worker imports much of them by name (its pool,
# transport, boot steps, command line: click_repl pulls in prompt_toolkit), which a workout that starts
# no worker cannot reach. numpy too: it loads subpackages lazily on first use (np.unique imports
# numpy.ma), so the compare sheet's numpy calls (nets/compare.py) reached one the workout never entered.
KEEP_WHOLE = ("celery", "kombu", "billiard", "click", "click_repl", "click_didyoumean", "click_plugins",
              "amqp", "vine", "dateutil", "tzlocal", "tzdata", "prompt_toolkit", "wcwidth", "numpy")
DROPPED_SUFFIXES = (".a", ".pyi", ".pxd", ".h", ".hpp", ".cuh")

# Imports and layers of every code path the bot and its workers take.
WORKOUT = """
import importlib, pkgutil
import torch, torch.nn as nn, torch.nn.functional as F
import aiogram, aiohttp, babel.support, dotenv, numpy, safetensors.torch, PIL.Image, PIL.ImageCms

PIL.Image.init()
optional = {"aiogram.fsm.storage.mongo", "aiogram.fsm.storage.pymongo",
            "aiogram.utils.web_app_signature"}  # their extra dependencies are not installed
for module in pkgutil.walk_packages(aiogram.__path__, "aiogram."):
    if module.name not in optional:
        importlib.import_module(module.name)
# REDIS_URL (bot/operator/storage.py): every module of redis-py but those needing extras we do not install.
import redis
for module in pkgutil.walk_packages(redis.__path__, "redis."):
    if not module.name.startswith(("redis.multidb", "redis.asyncio.multidb", "redis.ocsp")):
        importlib.import_module(module.name)

# JOB_BACKEND=celery (bot/jobs/celery_*.py): an app on the Redis transport, a message built. The
# worker's modules (pool, boot steps, command line) load by name at its start: KEEP_WHOLE keeps them.
import celery, celery.concurrency.prefork, kombu.transport.redis
app = celery.Celery("workout", broker="redis://127.0.0.1:1/0", set_as_current=False)
app.conf.update(task_serializer="json", accept_content=["json"])
app.amqp.as_task_v2("0", "stylebot.run", args=["job", 1])

net = nn.Sequential(
    nn.ReflectionPad2d(1), nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8), nn.ReLU(),
    nn.Upsample(scale_factor=2), nn.Conv2d(8, 12, 3, padding=1), nn.LeakyReLU(0.2),
    nn.PixelShuffle(2), nn.PReLU(3), nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1, output_padding=1), nn.Tanh())
x = torch.rand(1, 3, 32, 32, requires_grad=True)
y = net(x)
assert y.shape == (1, 3, 256, 256), y.shape
F.interpolate(y, scale_factor=0.5, mode="bicubic", align_corners=False)
net.half().float()  # the weights files are float16
with torch.inference_mode():
    net(torch.rand(1, 3, 16, 16))

def loss():
    value = net(x).mean()
    value.backward()
    return value

torch.optim.LBFGS([x], max_iter=2).step(loss)

# What scripts/fetch_weights.py does at build time: read an official .pth
# safely, write and read back float16 safetensors.
import tempfile
from pathlib import Path
with tempfile.TemporaryDirectory() as tmp:
    torch.save({"params_ema": net.state_dict()}, Path(tmp, "official.pth"))
    state = torch.load(Path(tmp, "official.pth"), map_location="cpu", weights_only=True)["params_ema"]
    safetensors.torch.save_file({k: v.half().contiguous() for k, v in state.items()}, str(Path(tmp, "m.safetensors")))
    net.load_state_dict({k: v.float() for k, v in safetensors.torch.load_file(str(Path(tmp, "m.safetensors"))).items()})
print("workout passed: torch", torch.__version__)
"""


def size_mb(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return round(total / 1e6)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_unused(venv: Path, site: Path) -> None:
    for rel in UNUSED:
        remove(site / rel)
    for dist in site.glob("*.dist-info"):
        if dist.name.split("-")[0].lower() in UNUSED_DISTRIBUTIONS:
            remove(dist)
    for record in site.glob("*.dist-info/RECORD"):  # only pip reads them, and pip is gone
        record.unlink()
    for script in venv.glob("bin/pip*"):
        script.unlink()
    remove(venv / "share")
    bin_dir = site / "torch" / "bin"
    for binary in bin_dir.glob("*"):
        if binary.name != "torch_shm_manager":  # import torch checks that it exists
            remove(binary)
    for data in (site / "babel" / "locale-data").glob("*.dat"):
        if data.stem.split("_")[0] not in BABEL_LOCALES:
            data.unlink()
    for tests in sorted(site.rglob("tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)
    for path in site.rglob("*"):
        if path.suffix in DROPPED_SUFFIXES and path.is_file():
            path.unlink()


def redistributed_as_shipped(lib: Path, site: Path) -> bool:
    """NVIDIA's CUDA libraries (the CUDA image): their licence lets us ship them unmodified."""
    return lib.relative_to(site).parts[0] == "nvidia"


def patched_by_auditwheel(lib: Path) -> bool:
    """auditwheel vendors libraries into NAME.libs and points the RPATH of what needs them there."""
    if lib.parent.name.endswith(".libs"):
        return True
    dynamic = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    return any(".libs" in line for line in dynamic.splitlines() if "RPATH" in line or "RUNPATH" in line)


def strip_libraries(site: Path) -> None:
    libs = [p for p in site.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    todo = [str(p) for p in libs if not redistributed_as_shipped(p, site) and not patched_by_auditwheel(p)]
    if todo:
        subprocess.run(["strip", "--strip-unneeded", *todo], check=True)


# Prepended to the workout: notes every Python source file opened. Run once
# bytecode exists, imports no longer open sources, so what it notes are the
# modules that read source text (their own or a function's) at run time.
NOTE_SOURCES_READ = """
import sys
_sources_read = set()
def _note(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].endswith(".py"):
        _sources_read.add(args[0])
sys.addaudithook(_note)
import atexit
atexit.register(lambda: print(*sorted(_sources_read), sep="\\n", file=open({out!r}, "w")))
"""


def workout(python: str, *, write_bytecode: bool, sources_read: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = WORKOUT if sources_read is None else NOTE_SOURCES_READ.format(out=str(sources_read)) + WORKOUT
    subprocess.run([python, "-c", code], env=env, check=True)


def entered(tree: Path) -> bool:
    """Whether the workout imported a module of this tree, or it holds native code."""
    for root, _, files in os.walk(tree):
        for name in files:
            if name.endswith(".pyc") or ".so" in name:
                return True
    return False


def remove_unentered(site: Path) -> None:
    def visit(directory: Path) -> None:
        for sub in sorted(p for p in directory.iterdir() if p.is_dir() and p.name != "__pycache__"):
            if (sub / "__init__.py").exists() and not entered(sub):
                shutil.rmtree(sub)
            else:
                visit(sub)

    for top in site.iterdir():
        if top.is_dir() and not top.name.endswith(".dist-info") and top.name not in KEEP_WHOLE:
            visit(top)


def make_sourceless(python: str, site: Path) -> None:
    listing = site / "sources-read.txt"
    workout(python, write_bytecode=False, sources_read=listing)
    keep = set(listing.read_text().split())
    listing.unlink()
    for pyc in list(site.rglob("__pycache__/*.pyc")):
        source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        if str(source) in keep:
            continue  # read as text at run time (torch's config modules, @overload'ed functions)
        pyc.rename(source.with_suffix(".pyc"))
        source.unlink(missing_ok=True)
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        if not any(cache.iterdir()):
            cache.rmdir()


def main() -> int:
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    python = str(venv / "bin" / "python")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for cache in list(site.rglob("__pycache__")):  # start clean: only the workout writes bytecode
        shutil.rmtree(cache)
    print(f"prune: installed: {size_mb(venv)} MB", flush=True)
    for step, run in (
        ("removed what nothing loads", lambda: remove_unused(venv, site)),
        ("stripped shared libraries", lambda: strip_libraries(site)),
        ("workout", lambda: workout(python, write_bytecode=True)),
        ("removed subpackages the workout never entered", lambda: remove_unentered(site)),
        ("bytecode instead of source for what runs", lambda: make_sourceless(python, site)),
    ):
        run()
        print(f"prune: {step}: {size_mb(venv)} MB", flush=True)
    workout(python, write_bytecode=False)  # what is left still runs
    return 0


if __name__ == "__main__":
    sys.exit(main())
