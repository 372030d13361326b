"""What the Celery job backend costs and gives, measured with real parts on this machine.

    python scripts/bench_queue.py --weights .cache/synthetic-weights
    python scripts/bench_queue.py --weights weights --json

Three figures (README, "More machines"; docs/scaling.md):
- latency: one small job at a time, submit to result, through the local
  backend (the bot's own worker process) and through Celery (a redis-server
  and a `python -m bot worker` host, both started here). Both run the tests'
  stand-in engine (tests/bot/jobs/fake_engine.py: three 10 ms steps and a
  tiny picture), so that what is timed is the path itself, not a network
  whose own time wanders by more than the difference; the medians, and the
  median of the pairs' differences.
- throughput: a burst of CPU-bound jobs (CycleGAN at 256 px) through Celery to
  one worker host with 1, then 2, single-thread processes; jobs a minute and
  the ratio.

- cost: Redis commands and bytes per job, from Redis's own counters (INFO
  commandstats and stats) over a run of small jobs, less what the idle bot and
  worker cost over the same time (the watch and the registry keep talking).

It needs Debian's redis-server. Each figure's samples are interleaved or run
back to back in one process, so the ratio holds when the machine's speed
drifts; the processor is printed with them.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bot.jobs.celery_queue import CeleryJobQueue  # noqa: E402
from bot.jobs.job import Job, JobDone, JobFailed  # noqa: E402
from bot.jobs.local import LocalJobQueue  # noqa: E402
from bot.jobs.worker import engine_options  # noqa: E402
from bot.settings import load_settings  # noqa: E402

TOKEN = "123456:" + "B" * 35


def picture(size: tuple[int, int], seed: int = 0) -> bytes:
    image = Image.effect_noise(size, 40 + seed).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, folder: Path):
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench_queue: needs redis-server (Debian package redis-server)")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Jobs:
    """Submit jobs one way or another and wait for their ends."""

    def __init__(self):
        self.ended: dict[str, asyncio.Future] = {}

    async def on_event(self, event) -> None:
        if isinstance(event, (JobDone, JobFailed)) and event.job.id in self.ended:
            self.ended[event.job.id].set_result(event)

    async def run(self, queue, job: Job) -> float:
        ended = self.ended[job.id] = asyncio.get_running_loop().create_future()
        began = time.perf_counter()
        await queue.submit(job)
        event = await asyncio.wait_for(ended, 600)
        del self.ended[job.id]
        if isinstance(event, JobFailed):
            raise SystemExit(f"bench_queue: a job failed: {event.message}")
        return time.perf_counter() - began


def settings_for(weights: Path, redis_url: str | None, **env):
    values = {"BOT_TOKEN": TOKEN, "WEIGHTS_DIR": str(weights), "DEVICE": "cpu", "MAX_QUEUE": "100",
              "JOB_WORKERS": "1", **({"REDIS_URL": redis_url, "JOB_BACKEND": "celery", "JOB_WORKERS": "0"}
                                     if redis_url else {}), **env}
    return load_settings(values, env_file=None)


STAND_IN_ENGINE = "tests.bot.jobs.fake_engine:FakeEngine"


def start_host(redis_url: str, weights: Path, processes: int, threads: int, folder: Path,
               engine: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **({"ENGINE_FACTORY": engine} if engine else {}), "REDIS_URL": redis_url, "WEIGHTS_DIR": str(weights), "DEVICE": "cpu",
           "JOB_WORKERS": str(processes), "WORKER_THREADS": str(threads), "WORKER_NAME": f"bench{processes}",
           "HEARTBEAT_FILE": str(folder / f"heartbeat{processes}")}
    return subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(folder / f"worker{processes}.log", "wb"))


def stop_host(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def wait_workers(queue: CeleryJobQueue, count: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while len(queue.workers_about()) < count:
        if time.monotonic() > end:
            raise SystemExit("bench_queue: the worker host did not get ready")
        await asyncio.sleep(0.5)


def small_job(user: int) -> Job:
    return Job(user_id=user, chat_id=user, op="upscale", images={"image": picture((32, 24), user)},
               options={"model": "general", "scale": 4}, output="png")


def redis_counters(url: str) -> tuple[int, int, int]:
    """Commands served, bytes in and bytes out, as Redis counts them."""
    import redis
    client = redis.Redis.from_url(url)
    try:
        calls = sum(stat["calls"] for stat in client.info("commandstats").values())
        stats = client.info("stats")
        return calls, stats["total_net_input_bytes"], stats["total_net_output_bytes"]
    finally:
        client.close()


async def cost(queue: CeleryJobQueue, jobs: Jobs, url: str, count: int, idle_s: float = 10.0) -> dict:
    first = redis_counters(url)
    await asyncio.sleep(idle_s)
    idle = [(b - a) / idle_s for a, b in zip(first, redis_counters(url))]
    before, began = redis_counters(url), time.perf_counter()
    picture_bytes = 0
    for i in range(count):
        job = small_job(300 + i)
        picture_bytes += len(job.images["image"])
        await jobs.run(queue, job)
    spent = time.perf_counter() - began
    per_job = [((b - a) - rate * spent) / count for a, b, rate in zip(before, redis_counters(url), idle)]
    return {"jobs": count, "commands_per_job": per_job[0], "bytes_in_per_job": per_job[1],
            "bytes_out_per_job": per_job[2], "picture_bytes": picture_bytes / count,
            "idle_commands_per_s": idle[0]}


async def latency(weights: Path, redis_url: str, folder: Path, samples: int) -> dict:
    jobs = Jobs()
    local_settings = settings_for(weights, None)
    local = LocalJobQueue(engine_factory=STAND_IN_ENGINE, engine_options=engine_options(local_settings, 1),
                          workers=1, max_queue=100, on_event=jobs.on_event)
    celery = CeleryJobQueue(settings_for(weights, redis_url), on_event=jobs.on_event)
    host = start_host(redis_url, weights, 1, os.cpu_count() or 1, folder, STAND_IN_ENGINE)
    try:
        await local.start()
        await celery.recover()
        await celery.start()
        await wait_workers(celery, 1)
        for queue in (local, celery):      # warm: models loaded, connections open
            await jobs.run(queue, small_job(1))
        local_s, celery_s = [], []
        for i in range(samples):           # interleaved, so a drift in the machine's speed hits both
            local_s.append(await jobs.run(local, small_job(100 + i)))
            celery_s.append(await jobs.run(celery, small_job(200 + i)))
        costs = await cost(celery, jobs, redis_url, 10)
    finally:
        await local.stop()
        await celery.stop()
        stop_host(host)
    return {"samples": samples, "local_median_s": statistics.median(local_s),
            "celery_median_s": statistics.median(celery_s),
            "extra_ms": 1000 * (statistics.median(celery_s) - statistics.median(local_s)),
            "extra_ms_paired_median": 1000 * statistics.median(c - l for c, l in zip(celery_s, local_s)),
            "cost": costs}


async def throughput(weights: Path, redis_url: str, folder: Path, jobs_count: int) -> dict:
    rates = {}
    for processes in (1, 2):
        jobs = Jobs()
        celery = CeleryJobQueue(settings_for(weights, redis_url), on_event=jobs.on_event)
        host = start_host(redis_url, weights, processes, 1, folder)
        try:
            await celery.recover()
            await celery.start()
            await wait_workers(celery, processes)
            burst = [Job(user_id=1000 + i, chat_id=1000 + i, op="translate",
                         images={"image": picture((256, 192), i)}, options={"direction": "summer2winter"})
                     for i in range(jobs_count + processes)]
            # one job per process first, so every process has loaded its model before the clock starts
            await asyncio.gather(*(jobs.run(celery, job) for job in burst[:processes]))
            began = time.perf_counter()
            await asyncio.gather(*(jobs.run(celery, job) for job in burst[processes:]))
            rates[processes] = jobs_count / (time.perf_counter() - began) * 60
        finally:
            await celery.stop()
            stop_host(host)
    return {"jobs": jobs_count, "one_process_per_min": rates[1], "two_processes_per_min": rates[2],
            "ratio": rates[2] / rates[1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Latency and throughput of the Celery job backend.")
    parser.add_argument("--weights", type=Path, required=True, help="a weights folder (synthetic will do)")
    parser.add_argument("--samples", type=int, default=21, help="small jobs per backend (default 21)")
    parser.add_argument("--jobs", type=int, default=12, help="jobs in the throughput burst (default 12)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        folder = Path(tmp)
        redis = Redis(folder)
        try:
            result = {"processor": processor(),
                      "latency": asyncio.run(latency(args.weights, redis.url, folder, args.samples)),
                      "throughput": asyncio.run(throughput(args.weights, redis.url, folder, args.jobs))}
        finally:
            redis.stop()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    lat, thr = result["latency"], result["throughput"]
    print(f"processor: {result['processor']}")
    print(f"small job, submit to result (median of {lat['samples']}): local {lat['local_median_s'] * 1000:.0f} ms, "
          f"celery {lat['celery_median_s'] * 1000:.0f} ms, extra {lat['extra_ms']:.0f} ms "
          f"(paired median {lat['extra_ms_paired_median']:.0f} ms)")
    c = lat["cost"]
    print(f"per job through Redis (a {c['picture_bytes'] / 1000:.1f} kB picture in and its result out): "
          f"{c['commands_per_job']:.0f} commands, {c['bytes_in_per_job'] / 1000:.1f} kB in, "
          f"{c['bytes_out_per_job'] / 1000:.1f} kB out; idle: {c['idle_commands_per_s']:.1f} commands/s")
    print(f"throughput, {thr['jobs']} CycleGAN jobs at 256 px: 1 process {thr['one_process_per_min']:.1f}/min, "
          f"2 processes {thr['two_processes_per_min']:.1f}/min, ratio {thr['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
