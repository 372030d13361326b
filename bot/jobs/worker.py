"""The child-process side of the job queue: one Engine, many jobs.

`bot.jobs.local.LocalJobQueue` spawns one process per worker with `main` as its target.
The process builds its engine once, then takes tasks from its own task queue
until it gets None. Everything that crosses the process boundary is plain
bytes and builtins: pictures travel encoded, never as PIL images or tensors,
so neither side holds two decoded copies.

Messages sent back over the result pipe (the first item names the kind):
    ("ready", engine_ok, about)             about: {"device": ..., "precision": ...} of the engine, and
                                             its limits (bot/jobs/device_limits.py) when the options carry them
    ("started", job_id)
    ("progress", job_id, done, total)        at most one per PROGRESS_INTERVAL_S
    ("done", job_id, data, width, height, downsized, seconds)
    ("failed", job_id, reason, code, message, error_type)
    ("cancelled", job_id)
Each task gets exactly one of done / failed / cancelled, which is how the
parent knows the worker is free again.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import time
from collections.abc import Callable

from bot.jobs import device_limits
from bot.settings import Settings
from nets.cpus import available_cpus

log = logging.getLogger("bot.jobs.worker")

PROGRESS_INTERVAL_S = 0.5
LOGGED_OPTIONS = ("model", "direction", "scale", "steps")
ERROR_MESSAGE = "Something went wrong while processing the picture."


def load_factory(path: str):
    """Resolve "package.module:Name" to the object it names."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"engine factory must look like 'module:Name', got {path!r}")
    return getattr(importlib.import_module(module_name), attr)


def main(index: int, tasks, results, cancel, engine_factory: str, engine_options: dict) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent decides
    # when workers stop, so a worker must not die of it half-way through a job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format=f"%(asctime)s %(levelname)s [worker {index}] %(name)s: %(message)s")
    engine_options, limits_by_device = prepare_process(index, engine_options)

    # Engine(threads=...) sets torch's own thread count itself.
    engine, build_error = build(engine_factory, engine_options)
    limits = limits_for(engine, limits_by_device)
    results.send(("ready", engine is not None, describe(engine, limits)))

    while True:
        task = tasks.get()
        if task is None:
            break
        job_id = task[0]
        results.send(("started", job_id))
        if engine is None:
            # A failed build (missing weights, say) is retried per job rather
            # than crashing the process, which would only be respawned to fail
            # the same way; this way each user gets an answer.
            engine, build_error = build(engine_factory, engine_options)
            limits = limits_for(engine, limits_by_device)
        if engine is None:
            results.send(failure(job_id, build_error))
        else:
            _, op, images, options, output = task
            if limits is not None:
                options = device_limits.apply(op, options, limits)
            results.send(run_job(engine, cancel, throttled(lambda done, total: results.send(
                ("progress", job_id, done, total))), job_id, op, images, options, output))
            del images
        # Drop the job's pictures now rather than while the next job waits.
        del task
        gc.collect()
        release_gpu_memory(engine)
    results.close()


def engine_options(settings: Settings, workers: int) -> dict:
    """The Engine's options for one of `workers` processes on this host, from its settings."""
    return {"weights_dir": str(settings.weights_dir), "device": settings.device, "max_side": settings.max_side,
            "fast_style": settings.fast_style, "precision": settings.cpu_precision,
            "device_limits": settings.device_limits(),
            # the workers share the cores rather than each taking all of them
            "threads": settings.worker_threads or max(1, available_cpus() // max(1, workers))}


def prepare_process(index: int, engine_options: dict) -> tuple[dict, dict | None]:
    """Set a worker process up before torch loads; returns the Engine's options and the limits by device."""
    threads = engine_options.get("threads")
    if threads:
        # Before torch is imported, so its intra-op pool is sized right from the
        # start; several workers on a few cores must not each take every core.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    engine_options = dict(engine_options)
    # Limits per device: taken once the engine says which device it got.
    limits_by_device = engine_options.pop("device_limits", None)
    if "device" in engine_options:
        # The engine's own option: with several GPUs, worker N takes the N-th usable one (mod their number).
        engine_options["gpu_slot"] = index
    return engine_options, limits_by_device


def describe(engine, limits: device_limits.DeviceLimits | None = None) -> dict:
    """What the parent learns about this worker's engine: device and precision
    (strings), and the limits it applies (numbers), so the bot's words match them."""
    about = {"device": str(getattr(engine, "device", "unknown")),
             "precision": str(getattr(engine, "precision", "unknown"))}
    if getattr(engine, "quality_precision", None) is not None:
        about["quality_precision"] = engine.quality_precision   # 💎 Quality keeps its own (nets/precision.py)
    if getattr(engine, "fast_style", None) is not None:
        about["fast_style"] = engine.fast_style   # the engine's pick for its device, shown first in menus
    if limits is not None:
        about.update(limits.as_dict())
    return about


def limits_for(engine, limits_by_device: dict | None) -> device_limits.DeviceLimits | None:
    """The limits of the device the engine got, set on it and logged; None without an engine or limits."""
    if engine is None or limits_by_device is None:
        return None
    device = getattr(engine, "device", "cpu")
    limits = device_limits.for_device(device, limits_by_device)
    engine.max_side = limits.max_side
    log.info("limits for %s: pictures up to %d px, quality mode %d steps up to %d px", device,
             limits.max_side, limits.quality_steps, limits.quality_max_side)
    return limits


def release_gpu_memory(engine) -> None:
    """Give the GPU memory of a job's activations back to the driver.

    torch's caching allocator keeps freed blocks for reuse; after a large
    picture that can be gigabytes a smaller job never needs, and that another
    worker on the same GPU cannot get. The models stay loaded."""
    if engine is not None and device_limits.device_type(getattr(engine, "device", "cpu")) == "cuda":
        import torch

        torch.cuda.empty_cache()


def build(engine_factory: str, engine_options: dict):
    try:
        return load_factory(engine_factory)(**engine_options), None
    except Exception as exc:
        log.exception("could not build the engine with %s", engine_factory)
        return None, exc


def throttled(send: Callable[[int, int], None], interval_s: float = PROGRESS_INTERVAL_S) -> Callable[[int, int], None]:
    """`send`, at most once per interval: a fast loop of tiny steps must not flood the
    pipe (or Redis) and the user's chat with message edits."""
    last_sent = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= interval_s:
            last_sent = now
            send(done, total)

    return progress


def run_job(engine, cancel, progress: Callable[[int, int], None], job_id: str, op: str, images: dict,
            options: dict, output: str):
    """One job on a built engine; its end as a message: ("done", ...), ("failed", ...) or ("cancelled", id)."""
    from nets import imageio
    from nets.errors import Cancelled

    if cancel.is_set():     # cancelled while it waited for the engine to be built
        return ("cancelled", job_id)
    try:
        # A value is one picture's bytes, or a list of them (a preview sheet's styles).
        pictures = {name: [imageio.load_image(d) for d in data] if isinstance(data, list) else imageio.load_image(data)
                    for name, data in images.items()}
        result = getattr(engine, op)(**pictures, **options, progress=progress, cancel=cancel)
        del pictures
        image = result.image
        data = imageio.encode_png(image) if output == "png" else imageio.encode_jpeg(image)
        # What ran, for the operator: the choices that change the work, never the pictures.
        chosen = " ".join(f"{k}={options[k]}" for k in LOGGED_OPTIONS if k in options)
        log.info("job %s: %s %s%s in %.1f s in %s", job_id, op, f"{image.width}x{image.height}",
                 f" ({chosen})" if chosen else "", result.seconds, getattr(result, "precision", "") or "?")
        return ("done", job_id, data, image.width, image.height, bool(result.downsized), float(result.seconds))
    except Cancelled:
        return ("cancelled", job_id)
    except Exception as exc:
        return failure(job_id, exc)


def failure(job_id: str, exc: BaseException):
    from nets.errors import ImageError, NetsError

    error_type = type(exc).__name__
    if isinstance(exc, ImageError):
        log.info("job %s: unusable picture (%s): %s", job_id, exc.code, exc.message)
        return ("failed", job_id, "input", exc.code, exc.message, error_type)
    log.error("job %s failed", job_id, exc_info=exc)
    if isinstance(exc, NetsError):
        # NetsError messages are written to be shown to a person.
        return ("failed", job_id, "error", exc.code, exc.message, error_type)
    return ("failed", job_id, "error", None, ERROR_MESSAGE, error_type)
