"""Side and step limits follow the device a worker really got (bot/jobs/device_limits.py, bot/jobs/worker.py)."""
import asyncio
import io
import time

from PIL import Image

from bot.jobs import device_limits
from bot.jobs.device_limits import DeviceLimits
from bot.jobs.job import Job, JobDone
from bot.jobs.local import LocalJobQueue
from bot.settings import load_settings
from tests.bot.jobs.fake_engine import FakeEngine, Result

TOKEN = "123456:" + "A" * 35
SETTINGS = load_settings({"BOT_TOKEN": TOKEN, "MAX_SIDE": "1024", "QUALITY_STEPS": "100", "QUALITY_MAX_SIDE": "384",
                          "GPU_MAX_SIDE": "2048", "GPU_QUALITY_STEPS": "300", "GPU_QUALITY_MAX_SIDE": "1024"},
                         env_file=None)
CPU = DeviceLimits(1024, 100, 384)
GPU = DeviceLimits(2048, 300, 1024)


def test_settings_carry_limits_per_device():
    assert SETTINGS.device_limits() == {"cpu": CPU.as_dict(), "cuda": GPU.as_dict()}
    defaults = load_settings({"BOT_TOKEN": TOKEN}, env_file=None).device_limits()
    assert defaults["cuda"] == {"max_side": 2048, "quality_steps": 300, "quality_max_side": 1024}


def test_each_device_takes_its_own_set():
    limits = SETTINGS.device_limits()
    assert device_limits.for_device("cpu", limits) == CPU
    assert device_limits.for_device("cuda:1", limits) == GPU


def test_a_quality_job_gets_the_devices_steps_and_side():
    assert device_limits.apply("stylize_quality", {"strength": 1}, CPU) == \
        {"strength": 1, "steps": 100, "max_side": 384}
    assert device_limits.apply("stylize_quality", {}, GPU) == {"steps": 300, "max_side": 1024}
    # a GPU value that reached a CPU worker is capped, never kept
    assert device_limits.apply("stylize_quality", {"steps": 300, "max_side": 1024}, CPU) == \
        {"steps": 100, "max_side": 384}


def test_an_asked_side_is_capped_and_the_rest_left_alone():
    assert device_limits.apply("upscale", {"scale": 4, "max_side": 1800}, CPU) == {"scale": 4, "max_side": 1024}
    assert device_limits.apply("upscale", {"max_side": 700}, GPU) == {"max_side": 700}
    assert device_limits.apply("translate", {"direction": "monet"}, CPU) == {"direction": "monet"}


class DeviceEngine(FakeEngine):
    """Gets a GPU when `gpu` says so (its worker's slot picks which), else falls back to the CPU
    like DEVICE=auto without a usable GPU. The result's size tells the steps and side it was given."""

    def __init__(self, *, device="auto", gpu=False, gpu_slot=0, **options):
        super().__init__(**options)
        self.device = f"cuda:{gpu_slot}" if gpu else "cpu"
        self.precision = "fp16" if gpu else "fp32"
        self.max_side = None

    def stylize_quality(self, content, style, *, steps, max_side, **_):
        return Result(Image.new("RGB", (steps, max_side)), False, 0.0)

    def stylize(self, content, style, **_):
        return Result(Image.new("RGB", (self.max_side, 8)), False, 0.0)


def run_queue(scenario, *, gpu: bool, workers: int = 1):
    async def main():
        done = []

        async def on_event(event):
            if isinstance(event, JobDone):
                done.append(event)

        queue = LocalJobQueue(engine_factory="tests.bot.jobs.test_device_limits:DeviceEngine", workers=workers,
                         engine_options={"device": "auto", "gpu": gpu, "device_limits": SETTINGS.device_limits()},
                         on_event=on_event)
        await queue.start()
        try:
            deadline = time.monotonic() + 60
            while len(queue.workers_about()) < workers:
                assert time.monotonic() < deadline, "the workers never got ready"
                await asyncio.sleep(0.05)
            return await scenario(queue, done)
        finally:
            await queue.stop()
    return asyncio.run(main())


def picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12)).save(out, format="PNG")
    return out.getvalue()


async def finish(queue, done, op, options):
    job = Job(user_id=1, chat_id=1, op=op, images={"content": picture(), "style": picture()}, options=options)
    await queue.submit(job)
    deadline = time.monotonic() + 60
    while not any(event.job is job for event in done):
        assert time.monotonic() < deadline, "the job never finished"
        await asyncio.sleep(0.05)
    return next(event for event in done if event.job is job)


def test_after_a_fall_back_the_worker_uses_the_cpu_limits_and_says_so():
    async def scenario(queue, done):
        (about,) = queue.workers_about()
        assert about == {"device": "cpu", "precision": "fp32", "fast_style": "lite", **CPU.as_dict()}
        assert queue.limit("max_side", 0) == 1024
        quality = await finish(queue, done, "stylize_quality", {"strength": 1.0})
        assert (quality.width, quality.height) == (100, 384)
        fast = await finish(queue, done, "stylize", {})
        assert fast.width == 1024                  # the engine's own side, set from the device's limits
    run_queue(scenario, gpu=False)


def test_on_a_gpu_the_worker_uses_the_gpu_limits():
    async def scenario(queue, done):
        assert queue.workers_about()[0]["max_side"] == 2048
        quality = await finish(queue, done, "stylize_quality", {})
        assert (quality.width, quality.height) == (300, 1024)
    run_queue(scenario, gpu=True)


def test_workers_spread_over_the_gpus_by_their_number():
    async def scenario(queue, done):
        assert sorted(about["device"] for about in queue.workers_about()) == ["cuda:0", "cuda:1"]
    run_queue(scenario, gpu=True, workers=2)
