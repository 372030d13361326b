"""The job queue against real worker processes running a fake engine.

Each test runs its own asyncio loop (asyncio.run) and its own LocalJobQueue, and
always stops it, so no test leaves processes behind for the next.
"""
import asyncio
import io
import multiprocessing
import os
import signal
import time

import pytest
from PIL import Image

from bot.jobs.job import Job, JobDone, JobFailed, JobProgress, JobQueued, JobStarted, QueueFull, UserBusy
from bot.jobs.local import LocalJobQueue

FAKE = "tests.bot.jobs.fake_engine:FakeEngine"
WAIT_S = 60    # generous: two cores are shared by many test runs at once


def picture(size=(32, 24), fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, format=fmt)
    return out.getvalue()


def make_job(user: int, *, output="jpeg", **options) -> Job:
    return Job(user_id=user, chat_id=user, op="stylize",
               images={"content": picture(), "style": picture()}, options=options, output=output)


class Events:
    """The on_event coroutine: records every event with the time it arrived."""

    def __init__(self):
        self.seen: list[tuple[float, object]] = []

    async def __call__(self, event):
        self.seen.append((time.monotonic(), event))

    def of(self, job: Job) -> list:
        return [e for _, e in self.seen if e.job.id == job.id]

    async def wait_for(self, predicate, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            for _, event in self.seen:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no such event; got {[type(e).__name__ for _, e in self.seen]}")
            await asyncio.sleep(0.02)

    async def end_of(self, job: Job, timeout=WAIT_S):
        return await self.wait_for(lambda e: e.job is job and isinstance(e, (JobDone, JobFailed)), timeout)


def run(scenario, **settings):
    """Run scenario(queue, events) on a started queue, then stop it and check it left no children."""
    async def main():
        events = Events()
        settings.setdefault("engine_factory", FAKE)
        settings.setdefault("engine_options", {})
        queue = LocalJobQueue(on_event=events, **settings)
        await queue.start()
        try:
            return await scenario(queue, events)
        finally:
            await queue.stop()
            assert multiprocessing.active_children() == []
    return asyncio.run(main())


def worker_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def test_job_runs_and_returns_encoded_picture():
    async def scenario(queue, events):
        first = make_job(1)
        assert await queue.submit(first) == 0
        assert queue.active_job(1) is first
        done = await events.end_of(first)
        assert [type(e) for e in events.of(first)][:2] == [JobQueued, JobStarted]
        assert isinstance(done, JobDone)
        assert Image.open(io.BytesIO(done.data)).format == "JPEG"
        assert (done.width, done.height) == (10, 8)
        assert queue.active_job(1) is None

        second = make_job(1, output="png")
        await queue.submit(second)
        done = await events.end_of(second)
        image = Image.open(io.BytesIO(done.data))
        # width 20: the same engine instance ran its second job
        assert (image.format, image.size) == ("PNG", (20, 8))
    run(scenario)


def test_a_ready_worker_tells_what_its_engine_is():
    reports = []

    async def scenario(queue, events):
        deadline = time.monotonic() + WAIT_S
        while not reports and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return list(reports)

    seen = run(scenario, engine_options={"fast_style": "adain"}, on_ready=reports.append)
    assert seen and seen[0]["fast_style"] == "adain" and "device" in seen[0] and "precision" in seen[0]


def test_progress_arrives_throttled():
    async def scenario(queue, events):
        job = make_job(1, steps=30, step_s=0.05)
        await queue.submit(job)
        await events.end_of(job)
        times = [t for t, e in events.seen if isinstance(e, JobProgress)]
        progress = [e for e in events.of(job) if isinstance(e, JobProgress)]
        assert 2 <= len(progress) <= 4
        assert all(e.total == 30 and 1 <= e.done <= 30 for e in progress)
        assert all(b - a >= 0.2 for a, b in zip(times, times[1:]))
    run(scenario)


def test_positions_are_reported_and_updated():
    async def scenario(queue, events):
        jobs = [make_job(user, steps=10, step_s=0.1) for user in (1, 2, 3)]
        assert [await queue.submit(job) for job in jobs] == [0, 1, 2]
        assert [queue.position(job.id) for job in jobs] == [0, 1, 2]
        await events.end_of(jobs[0])
        await events.wait_for(lambda e: e.job is jobs[1] and isinstance(e, JobStarted))
        assert queue.position(jobs[1].id) == 0
        assert queue.position(jobs[2].id) == 1
        for job in jobs[1:]:
            assert isinstance(await events.end_of(job), JobDone)
        assert [e.position for e in events.of(jobs[2]) if isinstance(e, JobQueued)] == [2, 1]
        assert queue.position(jobs[2].id) is None
    run(scenario, workers=1)


def test_one_job_per_user_and_a_bounded_line():
    async def scenario(queue, events):
        running = make_job(1, steps=20, step_s=0.05)
        await queue.submit(running)
        with pytest.raises(UserBusy):
            await queue.submit(make_job(1))
        await queue.submit(make_job(2))
        with pytest.raises(QueueFull):
            await queue.submit(make_job(3))
        assert queue.active_job(3) is None
        await events.end_of(running)
    run(scenario, workers=1, max_queue=1)


def test_cancel_a_queued_job():
    async def scenario(queue, events):
        jobs = [make_job(user, steps=10, step_s=0.1) for user in (1, 2, 3)]
        for job in jobs:
            await queue.submit(job)
        assert await queue.cancel(2) is True
        assert await queue.cancel(2) is False
        assert queue.active_job(2) is None
        assert queue.position(jobs[2].id) == 1
        await events.end_of(jobs[2])
        assert events.of(jobs[1]) == []     # even its first JobQueued had not gone out yet
        assert [e.position for e in events.of(jobs[2]) if isinstance(e, JobQueued)] == [2, 1]
    run(scenario, workers=1)


def test_cancel_a_running_job_reuses_the_worker():
    async def scenario(queue, events):
        job = make_job(1, steps=200, step_s=0.05)
        await queue.submit(job)
        await events.wait_for(lambda e: e.job is job and isinstance(e, JobProgress))
        pids = worker_pids()
        assert await queue.cancel(1) is True
        seen = len(events.of(job))
        cancelled_at = time.monotonic()

        following = make_job(1)
        # first in line: the worker is free once the engine has noticed the cancel
        assert await queue.submit(following) == 1
        await events.wait_for(lambda e: e.job is following and isinstance(e, JobStarted))
        assert time.monotonic() - cancelled_at < 1.5
        done = await events.end_of(following)
        await asyncio.sleep(0.3)
        assert len(events.of(job)) == seen
        assert worker_pids() == pids
        assert done.width == 20             # the same engine ran both
    run(scenario, workers=1)


def test_a_job_that_ignores_cancel_gets_its_worker_replaced():
    async def scenario(queue, events):
        queue.cancel_grace_s = 0.5
        job = make_job(1, steps=1, fail="hang")
        await queue.submit(job)
        await events.wait_for(lambda e: e.job is job and isinstance(e, JobProgress))
        pids = worker_pids()
        await queue.cancel(1)
        seen = len(events.of(job))
        following = make_job(2)
        await queue.submit(following)
        assert isinstance(await events.end_of(following), JobDone)
        assert worker_pids().isdisjoint(pids)
        assert len(events.of(job)) == seen
    run(scenario, workers=1)


def test_cancel_while_the_engine_is_still_being_built():
    async def scenario(queue, events):
        queue.cancel_grace_s = 0.3
        job = make_job(1)
        await queue.submit(job)
        pids = worker_pids()
        assert await queue.cancel(1) is True
        following = make_job(1)
        await queue.submit(following)
        done = await events.end_of(following)
        # a slow build is not a hung job: the worker was kept, and the
        # cancelled job never reached the engine
        assert worker_pids() == pids
        assert done.width == 10
        assert events.of(job) == []
    run(scenario, workers=1, engine_options={"build_s": 1.5})


@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_a_dead_worker_fails_its_job_and_is_replaced(how):
    async def scenario(queue, events):
        job = make_job(1, steps=200, step_s=0.05, fail="exit" if how == "os_exit" else None)
        await queue.submit(job)
        await events.wait_for(lambda e: e.job is job and isinstance(e, JobStarted))
        if how == "sigkill":
            (pid,) = worker_pids()
            os.kill(pid, signal.SIGKILL)
        failed = await events.end_of(job, timeout=5)
        assert isinstance(failed, JobFailed) and failed.reason == "worker_died"
        assert queue.active_job(1) is None
        following = make_job(1)
        await queue.submit(following)
        assert isinstance(await events.end_of(following), JobDone)
    run(scenario, workers=1)


def test_a_job_over_the_time_limit_fails_and_its_worker_is_replaced():
    async def scenario(queue, events):
        job = make_job(1, steps=1, fail="hang")
        waiting = make_job(2)
        await queue.submit(job)
        await queue.submit(waiting)
        await events.wait_for(lambda e: e.job is job and isinstance(e, JobStarted))
        pids = worker_pids()
        started = time.monotonic()
        failed = await events.end_of(job)
        assert time.monotonic() - started < 3
        assert (failed.reason, failed.code) == ("timeout", None)
        assert isinstance(await events.end_of(waiting), JobDone)
        assert worker_pids().isdisjoint(pids)
    run(scenario, workers=1, time_limit_s=1.0)


@pytest.mark.parametrize("fail, reason, code", [
    ("raise", "error", None),
    ("weights_error", "error", "checksum"),
    ("image_error", "input", "too_large"),
])
def test_engine_errors_become_failures(fail, reason, code):
    async def scenario(queue, events):
        job = make_job(1, fail=fail)
        await queue.submit(job)
        failed = await events.end_of(job)
        assert (failed.reason, failed.code) == (reason, code)
        assert "Traceback" not in failed.message and "boom" not in failed.message
        following = make_job(1)
        await queue.submit(following)
        assert isinstance(await events.end_of(following), JobDone)
    run(scenario)


def test_bytes_that_are_no_picture_are_an_input_failure():
    async def scenario(queue, events):
        job = Job(user_id=1, chat_id=1, op="upscale", images={"image": b"definitely not a picture"}, options={})
        await queue.submit(job)
        failed = await events.end_of(job)
        assert (failed.reason, failed.code) == ("input", "not_image")
    run(scenario)


def test_an_engine_that_cannot_be_built_fails_each_job_with_its_error():
    async def scenario(queue, events):
        for user in (1, 2):
            job = make_job(user)
            await queue.submit(job)
            failed = await events.end_of(job)
            assert (failed.reason, failed.code) == ("error", "missing")
    run(scenario, engine_options={"fail_build": True})


def test_stop_returns_unfinished_jobs_and_leaves_no_children():
    async def main():
        events = Events()
        queue = LocalJobQueue(engine_factory=FAKE, engine_options={}, workers=2, on_event=events)
        await queue.start()
        jobs = [make_job(user, steps=200, step_s=0.05) for user in (1, 2, 3)]
        for job in jobs:
            await queue.submit(job)
        await events.wait_for(lambda e: e.job is jobs[0] and isinstance(e, JobStarted))
        unfinished = await queue.stop(timeout=2)
        assert sorted(job.user_id for job in unfinished) == [1, 2, 3]
        assert multiprocessing.active_children() == []
        seen = len(events.seen)
        await asyncio.sleep(0.3)
        assert len(events.seen) == seen
        with pytest.raises(RuntimeError):
            await queue.submit(make_job(4))
    asyncio.run(main())


@pytest.mark.slow
def test_the_real_engine_with_synthetic_weights(weights_dir):
    pytest.importorskip("nets.engine", reason="nets/engine.py has not landed yet")

    async def scenario(queue, events):
        job = Job(user_id=1, chat_id=1, op="translate", images={"image": picture((48, 32), "JPEG")},
                  options={"direction": "monet"}, output="png")
        await queue.submit(job)
        done = await events.end_of(job, timeout=180)
        assert isinstance(done, JobDone), done
        image = Image.open(io.BytesIO(done.data))
        assert image.format == "PNG" and image.size == (done.width, done.height)
        assert done.width * 32 == done.height * 48      # same aspect ratio
    run(scenario, engine_factory="nets.engine:Engine",
        engine_options={"weights_dir": str(weights_dir), "device": "cpu", "threads": 1})
