"""A stand-in for nets.engine.Engine that the job-queue tests steer per job.

Every op accepts, through Job.options:
    steps, step_s   how many steps to take and how long each one sleeps
    fail            "raise" (RuntimeError), "image_error", "weights_error",
                    "exit" (the process dies mid-job, as under the OOM killer),
                    "hang" (reports progress 0, then sleeps a minute and never
                    looks at cancel)
Real options (strength, direction, ...) are accepted and ignored.

The result's width is 10 x the number of jobs this engine has run, so a test
can tell whether a worker built its engine once and reused it.
"""
import os
import time
from dataclasses import dataclass

from PIL import Image

from nets.errors import Cancelled, ImageError, WeightsError


@dataclass
class Result:
    image: Image.Image
    downsized: bool
    seconds: float


class FakeEngine:
    def __init__(self, *, fail_build: bool = False, build_s: float = 0.0, **options):
        time.sleep(build_s)     # loading weights takes a while
        if fail_build:
            raise WeightsError("The models are not installed.", "missing")
        self.options = options
        self.calls = 0
        self.fast_style = options.get("fast_style") or "lite"   # as Engine: its pick for the device

    def stylize(self, content, style, **opts):
        return self._run(**opts)

    def stylize_quality(self, content, style, **opts):
        return self._run(**opts)

    def translate(self, image, direction, **opts):
        return self._run(**opts)

    def upscale(self, image, **opts):
        return self._run(**opts)

    def _run(self, *, steps=3, step_s=0.01, fail=None, progress=None, cancel=None, **_ignored):
        start = time.monotonic()
        self.calls += 1
        for step in range(steps):
            if fail == "hang":
                if progress is not None:
                    progress(0, steps)      # so a test knows the job is in the engine
                time.sleep(60)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            time.sleep(step_s)
            if fail == "exit":
                os._exit(3)
            if progress is not None:
                progress(step + 1, steps)
        if fail == "raise":
            raise RuntimeError("boom")
        if fail == "image_error":
            raise ImageError("The picture is too large.", "too_large")
        if fail == "weights_error":
            raise WeightsError("A model file is damaged.", "checksum")
        return Result(Image.new("RGB", (10 * self.calls, 8), "red"), False, time.monotonic() - start)


class SlowEngine(FakeEngine):
    """FakeEngine whose every job takes FAKE_STEPS steps of FAKE_STEP_S seconds (the worker host's
    environment), for tests that must catch a job while it runs: the bot's handlers send real options."""

    device = "cpu"
    precision = "fp32"

    def _run(self, **opts):
        opts.update(steps=int(os.environ.get("FAKE_STEPS", "40")), step_s=float(os.environ.get("FAKE_STEP_S", "0.25")))
        return super()._run(**opts)


class PoisonEngine(SlowEngine):
    """Kills its worker process half a second into every upscale, as a picture that always runs a
    worker out of memory would; other ops run as SlowEngine's."""

    def upscale(self, image, **opts):
        time.sleep(0.5)
        os._exit(9)
